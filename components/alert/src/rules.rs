//! Monitoring rules: what to watch, when it is bad (warning / critical thresholds), how often to remind, and
//! where to send it. Rules come from the rules file (TOML, `[[rules]]` tables) and from the API (JSON, the same
//! fields); a rule stored through the API overrides the file's rule of the same id.

use serde::{Deserialize, Serialize};

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Symbols whose newest bar is more than N trading days old.
    Staleness,
    /// PSI of the newest date's feature rows against the model card's reference, per feature.
    FeatureDrift,
    /// PSI of logged scores over a window against the model card's score reference.
    ScoreDrift,
    /// The rolling mean of realised daily IC below a threshold for N consecutive days.
    IcDecay,
    /// Share of 5xx responses of a route over a window (host request metrics).
    ErrorRate,
    /// 95th percentile latency of a route over a window, in seconds (host request metrics).
    LatencyP95,
    /// Training jobs that failed within a window.
    FailedJobs,
    /// The newest verified backup older than N hours, or none.
    BackupStale,
}

impl Kind {
    /// The name used in rules, alerts and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Staleness => "staleness",
            Kind::FeatureDrift => "feature_drift",
            Kind::ScoreDrift => "score_drift",
            Kind::IcDecay => "ic_decay",
            Kind::ErrorRate => "error_rate",
            Kind::LatencyP95 => "latency_p95",
            Kind::FailedJobs => "failed_jobs",
            Kind::BackupStale => "backup_stale",
        }
    }

    /// How a value breaches a threshold of this kind.
    pub fn direction(self) -> Direction {
        match self {
            // "older than N": at N it is still fine.
            Kind::Staleness | Kind::BackupStale => Direction::Above,
            Kind::IcDecay => Direction::Below,
            Kind::FeatureDrift | Kind::ScoreDrift | Kind::ErrorRate | Kind::LatencyP95 | Kind::FailedJobs => {
                Direction::AtLeast
            }
        }
    }

    /// The optional parameters a rule of this kind may set (others are refused, so a typo never goes unseen).
    fn params(self) -> &'static [&'static str] {
        match self {
            Kind::Staleness | Kind::BackupStale => &[],
            Kind::FeatureDrift => &["model", "alias", "min_rows", "top"],
            Kind::ScoreDrift => &["model", "alias", "window_minutes", "min_rows"],
            Kind::IcDecay => &["model", "alias", "rolling_days", "consecutive_days", "min_rows"],
            Kind::ErrorRate | Kind::LatencyP95 => &["route", "window_minutes", "min_rows"],
            Kind::FailedJobs => &["window_minutes"],
        }
    }
}

/// How a value compares with a threshold to breach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// value > threshold.
    Above,
    /// value ≥ threshold.
    AtLeast,
    /// value < threshold.
    Below,
}

impl Direction {
    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Direction::Above => value > threshold,
            Direction::AtLeast => value >= threshold,
            Direction::Below => value < threshold,
        }
    }
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// The stored name (`warning` / `critical`, as the alerts table's CHECK has it).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The stored name back.
    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// A notification channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Generic JSON webhook (`alert_webhook_url`).
    Webhook,
    /// Slack-compatible incoming webhook (`alert_slack_webhook_url`).
    Slack,
    /// HTTP mail API (`alert_email_api_url`, to `alert_email_to`).
    Email,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 3] = [Channel::Webhook, Channel::Slack, Channel::Email];

    /// The channel's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Slack => "slack",
            Channel::Email => "email",
        }
    }
}

/// One monitoring rule, as written in the rules file or sent to the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id: 1 to 64 of `a-z 0-9 _ -`; part of every fingerprint the rule raises.
    pub id: String,
    /// What the rule watches.
    pub kind: Kind,
    /// A disabled rule is not evaluated, and its firing alerts resolve.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Warning threshold (units by kind; see [`Rule::thresholds`] for defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<f64>,
    /// Critical threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f64>,
    /// Registry model (drift, IC decay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Alias whose current version is watched (default `champion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Look-back window in minutes (score drift, error rate, latency, failed jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_minutes: Option<u64>,
    /// Days of realised IC in each rolling mean (IC decay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_days: Option<u32>,
    /// Consecutive days the rolling mean must stay below the threshold (IC decay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_days: Option<u32>,
    /// Fewest rows (drift), scored symbols per day (IC decay) or requests (error rate, latency) to judge on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rows: Option<u64>,
    /// Route pattern of the host metrics (`/api/predict/...`); every route on its own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Most drifting features reported, largest PSI first (feature drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
    /// Minutes after which a still-firing, unacknowledged alert is sent again (0 = never).
    #[serde(default = "default_repeat")]
    pub repeat_interval_minutes: u64,
    /// Channels to notify; every configured channel when absent, none when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Channel>>,
}

fn yes() -> bool {
    true
}

fn default_repeat() -> u64 {
    240
}

/// Defaults that come from spin variables (shared with `/health`), so one setting has one source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    /// `bar_max_age_days`: the staleness warning threshold, in trading days.
    pub bar_max_age_days: f64,
    /// `backup_max_age_hours`: the backup warning threshold, in hours.
    pub backup_max_age_hours: f64,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { bar_max_age_days: 5.0, backup_max_age_hours: 36.0 }
    }
}

/// A rule's warning and critical thresholds after defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Warning threshold.
    pub warn: Option<f64>,
    /// Critical threshold.
    pub critical: Option<f64>,
}

/// A rule that does not validate: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct RuleError {
    /// The field, as a path (`rules[2].warn`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl RuleError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        RuleError { field: field.to_string(), message: message.into() }
    }

    /// The same error under a parent path (`rules[2]` + `warn` → `rules[2].warn`).
    pub fn under(self, parent: &str) -> Self {
        let field = if self.field.is_empty() { parent.to_string() } else { format!("{parent}.{}", self.field) };
        RuleError { field, ..self }
    }
}

impl Rule {
    /// The thresholds evaluation uses. Staleness and backup rules warn at their variable unless `warn` is set;
    /// other kinds take their kind's defaults when they set neither threshold (and only then).
    pub fn thresholds(&self, defaults: &Defaults) -> Thresholds {
        let given = Thresholds { warn: self.warn, critical: self.critical };
        let (warn, critical) = match self.kind {
            Kind::Staleness => return Thresholds { warn: self.warn.or(Some(defaults.bar_max_age_days)), ..given },
            Kind::BackupStale => {
                return Thresholds { warn: self.warn.or(Some(defaults.backup_max_age_hours)), ..given };
            }
            _ if self.warn.is_some() || self.critical.is_some() => return given,
            Kind::FeatureDrift | Kind::ScoreDrift => (0.1, Some(0.25)),
            Kind::IcDecay => (0.0, None),
            Kind::ErrorRate => (0.05, Some(0.2)),
            Kind::LatencyP95 => (1.0, Some(5.0)),
            Kind::FailedJobs => (1.0, None),
        };
        Thresholds { warn: Some(warn), critical }
    }

    /// The severity `value` reaches under `thresholds`, if any.
    pub fn severity(&self, thresholds: Thresholds, value: f64) -> Option<Severity> {
        let breaches = |t: Option<f64>| t.is_some_and(|t| self.kind.direction().breaches(value, t));
        if breaches(thresholds.critical) {
            Some(Severity::Critical)
        } else if breaches(thresholds.warn) {
            Some(Severity::Warning)
        } else {
            None
        }
    }

    /// The alias whose version is watched.
    pub fn alias(&self) -> &str {
        self.alias.as_deref().unwrap_or("champion")
    }

    /// The look-back window in minutes.
    pub fn window_minutes(&self) -> u64 {
        self.window_minutes.unwrap_or(match self.kind {
            Kind::ErrorRate | Kind::LatencyP95 => 15,
            _ => 1440,
        })
    }

    /// The fewest rows to judge on.
    pub fn min_rows(&self) -> u64 {
        self.min_rows.unwrap_or(match self.kind {
            Kind::IcDecay => 10,
            Kind::ErrorRate | Kind::LatencyP95 => 20,
            _ => 30,
        })
    }

    /// Days in each rolling IC mean.
    pub fn rolling_days(&self) -> usize {
        self.rolling_days.unwrap_or(5) as usize
    }

    /// Consecutive days below the threshold before IC decay fires.
    pub fn consecutive_days(&self) -> usize {
        self.consecutive_days.unwrap_or(3) as usize
    }

    /// Most drifting features reported.
    pub fn top(&self) -> usize {
        self.top.unwrap_or(5) as usize
    }

    /// Whether the rule sends to `channel` (when that channel is configured at all).
    pub fn wants(&self, channel: Channel) -> bool {
        self.channels.as_ref().is_none_or(|c| c.contains(&channel))
    }

    /// Checks every field; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), RuleError> {
        let id_ok = (1..=64).contains(&self.id.len())
            && self.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
        if !id_ok {
            return Err(RuleError::new("id", format!("{:?} must be 1 to 64 characters of a-z 0-9 _ -", self.id)));
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 500) {
            return Err(RuleError::new("description", "at most 500 characters"));
        }
        let set: [(&str, bool); 8] = [
            ("model", self.model.is_some()),
            ("alias", self.alias.is_some()),
            ("window_minutes", self.window_minutes.is_some()),
            ("rolling_days", self.rolling_days.is_some()),
            ("consecutive_days", self.consecutive_days.is_some()),
            ("min_rows", self.min_rows.is_some()),
            ("route", self.route.is_some()),
            ("top", self.top.is_some()),
        ];
        let kind = self.kind.as_str();
        if let Some((name, _)) = set.iter().find(|(name, given)| *given && !self.kind.params().contains(name)) {
            return Err(RuleError::new(name, format!("not a parameter of kind {kind}")));
        }
        if self.kind.params().contains(&"model") {
            let model =
                self.model.as_deref().ok_or_else(|| RuleError::new("model", format!("kind {kind} needs it")))?;
            train_batch::registry::check_model_name(model).map_err(|e| RuleError::new("model", e.to_string()))?;
        }
        if let Some(alias) = &self.alias {
            train_batch::registry::check_alias(alias).map_err(|e| RuleError::new("alias", e.to_string()))?;
        }
        let max_window = if matches!(self.kind, Kind::ErrorRate | Kind::LatencyP95) { 1440 } else { 43_200 };
        in_range("window_minutes", self.window_minutes, 1, max_window)?;
        in_range("rolling_days", self.rolling_days.map(u64::from), 1, 60)?;
        in_range("consecutive_days", self.consecutive_days.map(u64::from), 1, 60)?;
        // A correlation needs three rows to mean anything.
        in_range("min_rows", self.min_rows, if self.kind == Kind::IcDecay { 3 } else { 1 }, 1_000_000)?;
        in_range("top", self.top.map(u64::from), 1, 50)?;
        in_range("repeat_interval_minutes", Some(self.repeat_interval_minutes), 0, 43_200)?;
        if let Some(route) = &self.route
            && (!route.starts_with('/') || route.len() > 200)
        {
            return Err(RuleError::new("route", "must be a route pattern of spin.toml, such as /api/predict/..."));
        }
        if let Some(channels) = &self.channels {
            for (i, c) in channels.iter().enumerate() {
                if channels[..i].contains(c) {
                    return Err(RuleError::new(&format!("channels[{i}]"), format!("{} is listed twice", c.as_str())));
                }
            }
        }
        self.validate_thresholds()
    }

    fn validate_thresholds(&self) -> Result<(), RuleError> {
        let (low, high, what) = match self.kind {
            Kind::Staleness => (0.0, 10_000.0, "trading days (0 to 10000)"),
            Kind::BackupStale => (0.0, 100_000.0, "hours (0 to 100000)"),
            Kind::FeatureDrift | Kind::ScoreDrift => (0.0, 100.0, "a PSI (0 to 100)"),
            Kind::IcDecay => (-1.0, 1.0, "an IC (-1 to 1)"),
            Kind::ErrorRate => (0.0, 1.0, "a share of requests (0 to 1)"),
            Kind::LatencyP95 => (0.0, 3600.0, "seconds (0 to 3600)"),
            Kind::FailedJobs => (1.0, 10_000.0, "a count of jobs (1 to 10000)"),
        };
        for (name, t) in [("warn", self.warn), ("critical", self.critical)] {
            if let Some(t) = t
                && !(t.is_finite() && low <= t && t <= high)
            {
                return Err(RuleError::new(name, format!("{t} is not {what}")));
            }
        }
        if let (Some(w), Some(c)) = (self.warn, self.critical) {
            let ordered = match self.kind.direction() {
                Direction::Below => c < w,
                _ => c > w,
            };
            if !ordered {
                let side = if self.kind.direction() == Direction::Below { "below" } else { "above" };
                return Err(RuleError::new("critical", format!("{c} must be {side} warn ({w})")));
            }
        }
        Ok(())
    }
}

fn in_range(name: &str, value: Option<u64>, low: u64, high: u64) -> Result<(), RuleError> {
    match value {
        Some(v) if v < low || v > high => Err(RuleError::new(name, format!("{v} is not in {low} to {high}"))),
        _ => Ok(()),
    }
}

/// One rule from JSON (the API's body); the error names the field (`rules[i]` is prefixed by the caller).
pub fn rule_from_json(value: serde_json::Value) -> Result<Rule, RuleError> {
    let rule: Rule = serde_json::from_value(value).map_err(|e| RuleError::new("", e.to_string()))?;
    rule.validate()?;
    Ok(rule)
}

/// The rules file: `[[rules]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rules: Vec<toml::Spanned<Rule>>,
}

/// Parses and validates a rules file; the error names the line (and the field) at fault.
pub fn parse_file(text: &str) -> Result<Vec<Rule>, String> {
    let file: RulesFile = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let mut rules: Vec<(usize, Rule)> = Vec::with_capacity(file.rules.len());
    for (i, spanned) in file.rules.into_iter().enumerate() {
        let line = line_of(spanned.span().start);
        let rule = spanned.into_inner();
        rule.validate().map_err(|e| format!("line {line}: {}", e.under(&format!("rules[{i}]"))))?;
        if let Some((first, _)) = rules.iter().find(|(_, r)| r.id == rule.id) {
            return Err(format!(
                "line {line}: rules[{i}].id: {:?} is already the id of the rule at line {first}",
                rule.id
            ));
        }
        rules.push((line, rule));
    }
    Ok(rules.into_iter().map(|(_, r)| r).collect())
}

/// The rules shipped in `config/alert_rules.toml`, used when the component has no rules file mounted.
pub const BUILTIN_RULES: &str = include_str!("../../../config/alert_rules.toml");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: serde_json::Value) -> Result<Rule, RuleError> {
        rule_from_json(v)
    }

    #[test]
    fn the_shipped_rules_file_parses_and_covers_every_kind() {
        let rules = parse_file(BUILTIN_RULES).unwrap();
        let mut kinds: Vec<Kind> = rules.iter().map(|r| r.kind).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), 8, "{kinds:?}");
        assert!(rules.iter().all(|r| r.enabled));
        let drift = rules.iter().find(|r| r.kind == Kind::FeatureDrift).unwrap();
        assert_eq!((drift.model.as_deref(), drift.alias()), (Some("us4-alpha158"), "champion"));
    }

    #[test]
    fn json_rules_name_the_field_at_fault() {
        let ok = rule(json!({"id": "drift", "kind": "score_drift", "model": "m"})).unwrap();
        assert_eq!((ok.enabled, ok.repeat_interval_minutes, ok.window_minutes(), ok.min_rows()), (true, 240, 1440, 30));
        let err = |v| rule(v).unwrap_err().to_string();
        assert!(err(json!({"id": "x", "kind": "score_drift"})).starts_with("model: kind score_drift needs it"));
        assert!(
            err(json!({"id": "x", "kind": "staleness", "top": 3}))
                .starts_with("top: not a parameter of kind staleness")
        );
        assert!(err(json!({"id": "X!", "kind": "staleness"})).starts_with("id: "));
        assert!(err(json!({"id": "x", "kind": "nope"})).contains("unknown variant `nope`"));
        assert!(err(json!({"id": "x", "kind": "staleness", "wran": 3})).contains("unknown field `wran`"));
        assert!(err(json!({"id": "x", "kind": "error_rate", "warn": 1.5})).starts_with("warn: 1.5 is not a share"));
        assert!(
            err(json!({"id": "x", "kind": "error_rate", "warn": 0.2, "critical": 0.1}))
                .starts_with("critical: 0.1 must be above warn (0.2)")
        );
        assert!(
            err(json!({"id": "x", "kind": "ic_decay", "model": "m", "warn": -0.1, "critical": 0.0}))
                .starts_with("critical: 0 must be below warn (-0.1)")
        );
        assert!(
            err(json!({"id": "x", "kind": "latency_p95", "window_minutes": 0}))
                .starts_with("window_minutes: 0 is not in")
        );
        assert!(err(json!({"id": "x", "kind": "ic_decay", "model": "m", "min_rows": 2})).starts_with("min_rows:"));
        assert!(
            err(json!({"id": "x", "kind": "failed_jobs", "channels": ["slack", "slack"]})).starts_with("channels[1]")
        );
        assert!(err(json!({"id": "x", "kind": "error_rate", "route": "api"})).starts_with("route:"));
        assert_eq!(RuleError::new("warn", "bad").under("rules[2]").to_string(), "rules[2].warn: bad");
    }

    #[test]
    fn file_errors_name_the_line() {
        let text =
            "[[rules]]\nid = \"a\"\nkind = \"staleness\"\n\n[[rules]]\nid = \"b\"\nkind = \"error_rate\"\nwarn = 2\n";
        let e = parse_file(text).unwrap_err();
        assert!(e.starts_with("line 5: rules[1].warn: 2 is not a share"), "{e}");
        let dup = "[[rules]]\nid = \"a\"\nkind = \"staleness\"\n[[rules]]\nid = \"a\"\nkind = \"backup_stale\"\n";
        assert_eq!(parse_file(dup).unwrap_err(), "line 4: rules[1].id: \"a\" is already the id of the rule at line 1");
        let syntax = parse_file("[[rules]]\nid = \"a\"\nkind = staleness\n").unwrap_err();
        assert!(syntax.contains("line 3"), "{syntax}");
        let unknown = parse_file("[[rules]]\nid = \"a\"\nkind = \"staleness\"\nwindow = 3\n").unwrap_err();
        assert!(unknown.contains("line 4") && unknown.contains("unknown field `window`"), "{unknown}");
        assert_eq!(parse_file("").unwrap(), vec![]);
    }

    #[test]
    fn thresholds_default_by_kind_and_compare_by_direction() {
        let d = Defaults { bar_max_age_days: 3.0, backup_max_age_hours: 24.0 };
        let stale = rule(json!({"id": "s", "kind": "staleness"})).unwrap();
        assert_eq!(stale.thresholds(&d), Thresholds { warn: Some(3.0), critical: None });
        let backup = rule(json!({"id": "b", "kind": "backup_stale", "critical": 72})).unwrap();
        assert_eq!(backup.thresholds(&d), Thresholds { warn: Some(24.0), critical: Some(72.0) });
        // Older than 3 trading days: 3 is fine, 4 warns.
        assert_eq!(stale.severity(stale.thresholds(&d), 3.0), None);
        assert_eq!(stale.severity(stale.thresholds(&d), 4.0), Some(Severity::Warning));
        let drift = rule(json!({"id": "d", "kind": "feature_drift", "model": "m"})).unwrap();
        let t = drift.thresholds(&d);
        assert_eq!(t, Thresholds { warn: Some(0.1), critical: Some(0.25) });
        assert_eq!(drift.severity(t, 0.1), Some(Severity::Warning));
        assert_eq!(drift.severity(t, 0.25), Some(Severity::Critical));
        assert_eq!(drift.severity(t, 0.05), None);
        let ic = rule(json!({"id": "i", "kind": "ic_decay", "model": "m", "warn": 0.01, "critical": -0.02})).unwrap();
        let t = ic.thresholds(&d);
        assert_eq!(ic.severity(t, 0.02), None);
        assert_eq!(ic.severity(t, 0.0), Some(Severity::Warning));
        assert_eq!(ic.severity(t, -0.03), Some(Severity::Critical));
        // A rule that sets one threshold gets no default for the other.
        let only = rule(json!({"id": "o", "kind": "score_drift", "model": "m", "critical": 0.3})).unwrap();
        assert_eq!(only.thresholds(&d), Thresholds { warn: None, critical: Some(0.3) });
        assert_eq!(only.severity(only.thresholds(&d), 0.2), None);
    }

    #[test]
    fn channels_default_to_all_and_an_empty_list_means_none() {
        let all = rule(json!({"id": "a", "kind": "failed_jobs"})).unwrap();
        assert!(Channel::ALL.iter().all(|c| all.wants(*c)));
        let slack = rule(json!({"id": "a", "kind": "failed_jobs", "channels": ["slack"]})).unwrap();
        assert!(slack.wants(Channel::Slack) && !slack.wants(Channel::Webhook));
        let none = rule(json!({"id": "a", "kind": "failed_jobs", "channels": []})).unwrap();
        assert!(!Channel::ALL.iter().any(|c| none.wants(*c)));
        // Round trip through the stored form (absent options are not written).
        let text = serde_json::to_string(&slack).unwrap();
        assert!(!text.contains("null"), "{text}");
        assert_eq!(rule(serde_json::from_str(&text).unwrap()).unwrap(), slack);
    }
}
