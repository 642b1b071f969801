//! The effective rule set: the rules file's rules (or the built-in copy of the shipped file when none is
//! mounted), overridden by id by the rules stored through the API in the `alert_rules` table.

use serde::Serialize;
use stockops_core::{Database, StorageError};

use crate::rules::{self, Defaults, Rule, RuleError, Thresholds};

/// Where an effective rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The mounted rules file.
    File,
    /// The rules shipped with the component (no rules file mounted).
    Builtin,
    /// Stored through `PUT /api/alerts/rules`.
    Api,
}

/// A rule in force, with where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effective {
    /// The rule.
    #[serde(flatten)]
    pub rule: Rule,
    /// Where it comes from.
    pub source: Source,
    /// True when an API rule replaces a file rule of the same id.
    pub overrides_file: bool,
    /// When the API rule was stored.
    pub updated_at: Option<String>,
    /// Who stored it.
    pub updated_by: Option<String>,
    /// The thresholds evaluation uses, defaults applied.
    pub thresholds: Thresholds,
}

/// Why the rule set cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RulesetError {
    /// The rules file does not parse or validate (the message names the line).
    #[error("rules file {path}: {message}")]
    File {
        /// Where the file is.
        path: String,
        /// What is wrong, with its line.
        message: String,
    },
    /// A stored API rule no longer reads as a rule.
    #[error("stored rule {id}: {source}")]
    Stored {
        /// Its id.
        id: String,
        /// What is wrong.
        source: RuleError,
    },
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<RulesetError> for stockops_core::ApiError {
    fn from(e: RulesetError) -> Self {
        use stockops_core::ApiError;
        match e {
            RulesetError::Storage(s) => s.into(),
            RulesetError::File { .. } => ApiError::new(500, "invalid_rules_file", e.to_string()),
            RulesetError::Stored { .. } => ApiError::new(500, "invalid_stored_rule", e.to_string()),
        }
    }
}

/// The rules file as read: its path and text, or None when no file is mounted.
pub struct RulesFile {
    /// Where it was read from.
    pub path: String,
    /// Its contents; None when the file does not exist (the built-in rules apply).
    pub text: Option<String>,
}

/// A rule stored through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    /// The rule.
    pub rule: Rule,
    /// When it was stored.
    pub updated_at: String,
    /// Who stored it.
    pub updated_by: Option<String>,
}

/// Every rule stored through the API, by id.
pub fn stored_rules(db: &impl Database) -> Result<Vec<StoredRule>, RulesetError> {
    let rows = db.execute("SELECT id, rule, updated_at, updated_by FROM alert_rules ORDER BY id", &[])?;
    (0..rows.rows.len())
        .map(|i| {
            let id = rows.text(i, "id").unwrap_or_default().to_string();
            let value =
                serde_json::from_str(rows.text(i, "rule").unwrap_or_default()).map_err(|e| RulesetError::Stored {
                    id: id.clone(),
                    source: RuleError { field: String::new(), message: e.to_string() },
                })?;
            let rule =
                rules::rule_from_json(value).map_err(|source| RulesetError::Stored { id: id.clone(), source })?;
            Ok(StoredRule {
                rule,
                updated_at: rows.text(i, "updated_at").unwrap_or_default().to_string(),
                updated_by: rows.text(i, "updated_by").map(str::to_string),
            })
        })
        .collect()
}

/// Stores (inserts or replaces by id) validated rules in one transaction.
pub fn store_rules(db: &impl Database, rules: &[Rule], by: &str, now: &str) -> Result<(), StorageError> {
    db.transaction(|tx| {
        for rule in rules {
            // A rule always serialises: plain strings, numbers and enums.
            let json = serde_json::to_string(rule).unwrap_or_default();
            tx.execute(
                "INSERT INTO alert_rules (id, rule, updated_at, updated_by) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET rule = excluded.rule, updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by",
                &[rule.id.clone().into(), json.into(), now.into(), by.into()],
            )?;
        }
        Ok(())
    })
}

/// Removes the API rule `id`; false when there was none (the file's rule of that id, if any, applies again).
pub fn delete_rule(db: &impl Database, id: &str) -> Result<bool, StorageError> {
    let rows = db.execute("DELETE FROM alert_rules WHERE id = ? RETURNING id", &[id.into()])?;
    Ok(!rows.rows.is_empty())
}

/// The rules in force: file (or built-in) rules, each replaced by the API rule of the same id, then the API
/// rules the file does not have; in that order.
pub fn effective(file: &RulesFile, db: &impl Database, defaults: &Defaults) -> Result<Vec<Effective>, RulesetError> {
    let (text, source) = match &file.text {
        Some(text) => (text.as_str(), Source::File),
        None => (rules::BUILTIN_RULES, Source::Builtin),
    };
    let file_rules =
        rules::parse_file(text).map_err(|message| RulesetError::File { path: file.path.clone(), message })?;
    Ok(merge(file_rules, source, stored_rules(db)?, defaults))
}

/// The merge behind [`effective`].
pub fn merge(file_rules: Vec<Rule>, source: Source, stored: Vec<StoredRule>, defaults: &Defaults) -> Vec<Effective> {
    let entry = |rule: Rule, source, overrides_file, updated_at, updated_by| Effective {
        thresholds: rule.thresholds(defaults),
        rule,
        source,
        overrides_file,
        updated_at,
        updated_by,
    };
    let mut stored: Vec<Option<StoredRule>> = stored.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(file_rules.len() + stored.len());
    for rule in file_rules {
        let api = stored.iter_mut().find(|s| s.as_ref().is_some_and(|s| s.rule.id == rule.id)).and_then(Option::take);
        out.push(match api {
            Some(s) => entry(s.rule, Source::Api, true, Some(s.updated_at), s.updated_by),
            None => entry(rule, source, false, None, None),
        });
    }
    for s in stored.into_iter().flatten() {
        out.push(entry(s.rule, Source::Api, false, Some(s.updated_at), s.updated_by));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: serde_json::Value) -> Rule {
        rules::rule_from_json(v).unwrap()
    }

    #[test]
    fn api_rules_override_file_rules_by_id_and_add_their_own() {
        let file = vec![rule(json!({"id": "a", "kind": "staleness"})), rule(json!({"id": "b", "kind": "failed_jobs"}))];
        let stored = vec![
            StoredRule {
                rule: rule(json!({"id": "b", "kind": "failed_jobs", "enabled": false})),
                updated_at: "t1".into(),
                updated_by: Some("ops".into()),
            },
            StoredRule {
                rule: rule(json!({"id": "c", "kind": "backup_stale"})),
                updated_at: "t2".into(),
                updated_by: None,
            },
        ];
        let d = Defaults::default();
        let rules = merge(file, Source::File, stored, &d);
        let view: Vec<(&str, Source, bool, bool)> =
            rules.iter().map(|e| (e.rule.id.as_str(), e.source, e.overrides_file, e.rule.enabled)).collect();
        assert_eq!(
            view,
            vec![("a", Source::File, false, true), ("b", Source::Api, true, false), ("c", Source::Api, false, true)]
        );
        assert_eq!(rules[1].updated_by.as_deref(), Some("ops"));
        assert_eq!(rules[2].thresholds.warn, Some(36.0));
        // The API shape: the rule's fields, flattened, with where it comes from.
        let v = serde_json::to_value(&rules[1]).unwrap();
        assert_eq!(
            (v["id"].clone(), v["source"].clone(), v["enabled"].clone()),
            (json!("b"), json!("api"), json!(false))
        );
        assert_eq!(v["thresholds"], json!({"warn": 1.0, "critical": null}));
    }
}
