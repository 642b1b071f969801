//! Notification channels: a generic JSON webhook, a Slack-compatible incoming webhook, and an HTTP mail API.
//! The channels and their URLs come from spin variables (an empty URL turns a channel off); the payloads are
//! built here, purely; the POST itself goes through a [`Transport`] (wasi:http in the component), with a
//! per-attempt timeout and retries with backoff on transport errors, 5xx and 429.
//!
//! URLs and tokens are secrets of a kind (a Slack webhook URL is its own credential): they are never put in an
//! alert event, an answer or a log line; deliveries are reported by channel name.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::alerts::Alert;
use crate::rules::Channel;

/// Why an alert is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Notice {
    /// It just fired.
    Fired,
    /// It is still firing and the repeat interval passed.
    Repeated,
    /// Its severity went up.
    Escalated,
    /// It resolved.
    Resolved,
}

impl Notice {
    /// The event name.
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::Fired => "fired",
            Notice::Repeated => "repeated",
            Notice::Escalated => "escalated",
            Notice::Resolved => "resolved",
        }
    }

    /// `firing` or `resolved`: the alert's status as receivers see it.
    pub fn status(self) -> &'static str {
        if self == Notice::Resolved { "resolved" } else { "firing" }
    }
}

/// Where to send: an absolute `http` or `https` URL, split the way wasi:http takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// True for https.
    pub https: bool,
    /// `host[:port]`.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
}

/// Parses `http(s)://host[:port][/path][?query]`; the error never repeats the URL (it may hold a token).
pub fn parse_url(url: &str) -> Result<Endpoint, String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("must start with http:// or https://".into());
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err("has no valid host (user info and spaces are not allowed)".into());
    }
    let path_and_query = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(Endpoint { https, authority: authority.to_string(), path_and_query })
}

/// The configured channels and delivery policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Channels {
    /// Generic JSON webhook.
    pub webhook: Option<Endpoint>,
    /// Slack-compatible webhook.
    pub slack: Option<Endpoint>,
    /// HTTP mail API.
    pub email: Option<Email>,
    /// Per-attempt timeout (connect, first byte, between bytes).
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
}

/// The mail API and who gets the mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// The API's endpoint.
    pub endpoint: Endpoint,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
}

impl Channels {
    /// Reads the channel variables through `var` (unset = empty): the three URLs (empty = off),
    /// `alert_email_api_token`, `alert_email_to` (comma-separated), `external_api_timeout_secs` (default 10)
    /// and `external_api_retries` (default 3). The error names the variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Channels, String> {
        let get = |name: &str| var(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let url = |name: &str| get(name).map(|u| parse_url(&u).map_err(|e| format!("variable {name} {e}"))).transpose();
        let number = |name: &str, default: u64, max: u64| match get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("variable {name} = {v:?} is not a whole number from 0 to {max}")),
        };
        let email = match url("alert_email_api_url")? {
            None => None,
            Some(endpoint) => {
                let to: Vec<String> = get("alert_email_to")
                    .unwrap_or_default()
                    .split(',')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect();
                if to.is_empty() {
                    return Err(
                        "variable alert_email_to is empty but alert_email_api_url is set: name a recipient".into()
                    );
                }
                Some(Email { endpoint, token: get("alert_email_api_token"), to })
            }
        };
        let timeout = number("external_api_timeout_secs", 10, 300)?;
        Ok(Channels {
            webhook: url("alert_webhook_url")?,
            slack: url("alert_slack_webhook_url")?,
            email,
            timeout: Duration::from_secs(timeout.max(1)),
            retries: number("external_api_retries", 3, 10)? as u32,
        })
    }

    /// The channels that are configured.
    pub fn configured(&self) -> Vec<Channel> {
        Channel::ALL
            .into_iter()
            .filter(|c| match c {
                Channel::Webhook => self.webhook.is_some(),
                Channel::Slack => self.slack.is_some(),
                Channel::Email => self.email.is_some(),
            })
            .collect()
    }

    /// The request for `channel` about `alert`; None when that channel is not configured.
    pub fn request(&self, channel: Channel, alert: &Alert, notice: Notice, now: DateTime<Utc>) -> Option<Outgoing> {
        let json_body = |v: Value| v.to_string().into_bytes();
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        let (endpoint, body) = match channel {
            Channel::Webhook => (self.webhook.clone()?, json_body(webhook_payload(alert, notice, now))),
            Channel::Slack => (self.slack.clone()?, json_body(slack_payload(alert, notice))),
            Channel::Email => {
                let email = self.email.as_ref()?;
                if let Some(token) = &email.token {
                    headers.push(("authorization".to_string(), format!("Bearer {token}")));
                }
                (email.endpoint.clone(), json_body(email_payload(alert, notice, &email.to)))
            }
        };
        Some(Outgoing { channel, endpoint, headers, body })
    }
}

/// One POST to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The channel.
    pub channel: Channel,
    /// Where.
    pub endpoint: Endpoint,
    /// Headers (may hold a token: never logged).
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Vec<u8>,
}

/// The generic webhook's body: the alert as the API answers it, with why it is sent.
pub fn webhook_payload(alert: &Alert, notice: Notice, now: DateTime<Utc>) -> Value {
    json!({
        "source": "stockops",
        "status": notice.status(),
        "event": notice.as_str(),
        "alert": alert,
        "sent_at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// `[FIRING] critical` / `[RESOLVED] warning`, with the reason for a repeat or an escalation.
fn headline(alert: &Alert, notice: Notice) -> String {
    let why = match notice {
        Notice::Repeated => " (still firing)",
        Notice::Escalated => " (escalated)",
        Notice::Fired | Notice::Resolved => "",
    };
    format!("[{}] {}{why}", notice.status().to_uppercase(), alert.severity.as_str())
}

/// Slack's escaping of `&`, `<` and `>` in message text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A Slack-compatible body: `text` (what every Slack-compatible receiver shows) and Block Kit blocks.
pub fn slack_payload(alert: &Alert, notice: Notice) -> Value {
    let head = headline(alert, notice);
    let summary = slack_escape(&alert.summary);
    let value = alert.value.map_or_else(String::new, |v| format!(" · value {v}"));
    let context =
        format!("alert {} · {} · {} · since {}{value}", alert.id, alert.rule_id, alert.kind, alert.started_at);
    json!({
        "text": format!("{head} {}: {summary}", alert.rule_id),
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": format!("*{head}* `{}`\n{summary}", alert.rule_id) } },
            { "type": "context", "elements": [ { "type": "mrkdwn", "text": slack_escape(&context) } ] },
        ],
    })
}

/// The mail API's body: `{to, subject, text}`.
pub fn email_payload(alert: &Alert, notice: Notice, to: &[String]) -> Value {
    let subject = format!("[stockops] {} {}: {}", headline(alert, notice), alert.rule_id, alert.summary);
    let details = serde_json::to_string_pretty(&alert.details).unwrap_or_default();
    let mut text = format!(
        "{}\n\nalert {} ({})\nrule: {}\nkind: {}\nseverity: {}\nstatus: {}\nsince: {}\n",
        alert.summary,
        alert.id,
        alert.fingerprint,
        alert.rule_id,
        alert.kind,
        alert.severity.as_str(),
        notice.status(),
        alert.started_at
    );
    if let Some(v) = alert.value {
        text.push_str(&format!("value: {v}\n"));
    }
    if let Some(at) = &alert.resolved_at {
        text.push_str(&format!("resolved: {at}\n"));
    }
    text.push_str(&format!("\ndetails:\n{details}\n"));
    json!({ "to": to, "subject": crate::checks::clip(&subject, 200), "text": text })
}

/// Sends requests: wasi:http in the component; anything that can POST natively.
pub trait Transport {
    /// POSTs `body` to `endpoint`, giving up after `timeout` to connect or to the first byte; the status.
    fn post(
        &mut self,
        endpoint: &Endpoint,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<u16, String>;
    /// Waits before a retry.
    fn pause(&mut self, wait: Duration);
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// 1 for the first.
    pub attempt: u32,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// One notification on one channel, with every attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// The alert.
    pub alert_id: i64,
    /// Why it was sent.
    pub event: Notice,
    /// The channel.
    pub channel: Channel,
    /// Whether an attempt got a 2xx.
    pub delivered: bool,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

/// The wait before retry `n` (1-based): 0.5 s, 1 s, 2 s, … at most 8 s.
pub fn backoff(retry: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << retry.saturating_sub(1).min(4)))
}

/// Sends `out` until a 2xx, a refusal that retrying cannot change (4xx other than 408 and 429), or
/// `1 + retries` attempts.
pub fn deliver(
    transport: &mut impl Transport,
    out: &Outgoing,
    alert_id: i64,
    notice: Notice,
    timeout: Duration,
    retries: u32,
) -> Delivery {
    let mut attempts = Vec::new();
    let mut delivered = false;
    for n in 1..=retries + 1 {
        if n > 1 {
            transport.pause(backoff(n - 1));
        }
        let (status, error, retry) = match transport.post(&out.endpoint, &out.headers, &out.body, timeout) {
            Ok(s) if (200..300).contains(&s) => (Some(s), None, false),
            Ok(s) => (Some(s), Some(format!("receiver answered {s}")), s >= 500 || s == 408 || s == 429),
            Err(e) => (None, Some(e), true),
        };
        delivered = error.is_none();
        attempts.push(Attempt { attempt: n, status, error });
        if !retry {
            break;
        }
    }
    Delivery { alert_id, event: notice, channel: out.channel, delivered, attempts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Severity;

    fn alert() -> Alert {
        Alert {
            id: 12,
            fingerprint: "predict-errors:/api/predict/...".into(),
            rule_id: "predict-errors".into(),
            kind: "error_rate".into(),
            severity: Severity::Critical,
            state: "firing".into(),
            summary: "25.0% of /api/predict/... requests failed (5xx) <ouch> & more".into(),
            details: json!({"requests": 100}),
            value: Some(0.25),
            started_at: "2024-06-05T12:00:00.000Z".into(),
            last_seen_at: "2024-06-05T12:00:00.000Z".into(),
            last_notified_at: Some("2024-06-05T12:00:00.000Z".into()),
            notify_count: 0,
            resolved_at: None,
            acked_at: None,
            acked_by: None,
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn urls_split_for_wasi_http() {
        let e = parse_url("http://127.0.0.1:8080/hook?x=1").unwrap();
        assert_eq!((e.https, e.authority.as_str(), e.path_and_query.as_str()), (false, "127.0.0.1:8080", "/hook?x=1"));
        let e = parse_url("https://hooks.slack.com").unwrap();
        assert_eq!((e.https, e.authority.as_str(), e.path_and_query.as_str()), (true, "hooks.slack.com", "/"));
        assert_eq!(parse_url("https://h?q").unwrap().path_and_query, "/?q");
        assert!(parse_url("ftp://h/x").is_err());
        assert!(parse_url("https:///x").is_err());
        // The error never echoes the URL: it may carry a token.
        let e = parse_url("https://user:secret@h/x").unwrap_err();
        assert!(!e.contains("secret"));
    }

    #[test]
    fn channels_come_from_variables_and_empty_means_off() {
        let c = Channels::from_vars(vars(&[])).unwrap();
        assert_eq!((c.configured(), c.timeout, c.retries), (vec![], Duration::from_secs(10), 3));
        let c = Channels::from_vars(vars(&[
            ("alert_webhook_url", "http://127.0.0.1:9/w"),
            ("alert_slack_webhook_url", " "),
            ("alert_email_api_url", "http://127.0.0.1:9/mail"),
            ("alert_email_to", "a@example.com, b@example.com"),
            ("alert_email_api_token", "tok"),
            ("external_api_timeout_secs", "2"),
            ("external_api_retries", "0"),
        ]))
        .unwrap();
        assert_eq!(c.configured(), vec![Channel::Webhook, Channel::Email]);
        assert_eq!((c.timeout, c.retries), (Duration::from_secs(2), 0));
        assert_eq!(c.email.as_ref().unwrap().to, ["a@example.com", "b@example.com"]);
        let err = Channels::from_vars(vars(&[("alert_webhook_url", "hooks.example.com/x")])).unwrap_err();
        assert!(err.starts_with("variable alert_webhook_url must start with http"), "{err}");
        let err = Channels::from_vars(vars(&[("alert_email_api_url", "http://m/x")])).unwrap_err();
        assert!(err.contains("alert_email_to"), "{err}");
        let err = Channels::from_vars(vars(&[("external_api_retries", "many")])).unwrap_err();
        assert!(err.contains("external_api_retries"), "{err}");
    }

    #[test]
    fn payload_shapes() {
        let a = alert();
        let now: DateTime<Utc> = "2024-06-05T12:01:00Z".parse().unwrap();
        let w = webhook_payload(&a, Notice::Fired, now);
        assert_eq!((w["status"].clone(), w["event"].clone()), (json!("firing"), json!("fired")));
        assert_eq!(w["alert"]["id"], 12);
        assert_eq!(w["alert"]["fingerprint"], "predict-errors:/api/predict/...");
        assert_eq!(w["alert"]["severity"], "critical");
        assert_eq!(w["alert"]["details"]["requests"], 100);
        assert_eq!(w["sent_at"], "2024-06-05T12:01:00.000Z");
        assert_eq!(webhook_payload(&a, Notice::Resolved, now)["status"], "resolved");

        let s = slack_payload(&a, Notice::Repeated);
        let text = s["text"].as_str().unwrap();
        assert!(text.starts_with("[FIRING] critical (still firing) predict-errors: 25.0%"), "{text}");
        assert!(text.contains("&lt;ouch&gt; &amp; more"), "{text}");
        assert_eq!(s["blocks"][0]["type"], "section");
        assert!(s["blocks"][1]["elements"][0]["text"].as_str().unwrap().contains("alert 12"));

        let m = email_payload(&a, Notice::Escalated, &["ops@example.com".to_string()]);
        assert_eq!(m["to"], json!(["ops@example.com"]));
        assert!(m["subject"].as_str().unwrap().starts_with("[stockops] [FIRING] critical (escalated) predict-errors:"));
        let body = m["text"].as_str().unwrap();
        assert!(body.contains("alert 12 (predict-errors:/api/predict/...)") && body.contains("\"requests\": 100"));
    }

    #[test]
    fn requests_carry_the_mail_token_only_to_the_mail_api() {
        let c = Channels::from_vars(vars(&[
            ("alert_webhook_url", "http://127.0.0.1:9/w"),
            ("alert_email_api_url", "https://mail.example.com/send"),
            ("alert_email_to", "ops@example.com"),
            ("alert_email_api_token", "s3cret"),
        ]))
        .unwrap();
        let now = Utc::now();
        let mail = c.request(Channel::Email, &alert(), Notice::Fired, now).unwrap();
        assert!(mail.headers.contains(&("authorization".into(), "Bearer s3cret".into())));
        assert_eq!(mail.endpoint.path_and_query, "/send");
        let hook = c.request(Channel::Webhook, &alert(), Notice::Fired, now).unwrap();
        assert!(hook.headers.iter().all(|(k, _)| k != "authorization"));
        assert!(c.request(Channel::Slack, &alert(), Notice::Fired, now).is_none());
    }

    /// Answers from a script, recording what it was asked and how long it was told to wait.
    struct Scripted {
        answers: Vec<Result<u16, String>>,
        posts: usize,
        pauses: Vec<Duration>,
    }

    impl Transport for Scripted {
        fn post(&mut self, _: &Endpoint, _: &[(String, String)], _: &[u8], _: Duration) -> Result<u16, String> {
            self.posts += 1;
            self.answers.remove(0)
        }
        fn pause(&mut self, wait: Duration) {
            self.pauses.push(wait);
        }
    }

    #[test]
    fn retries_with_backoff_on_errors_and_5xx_but_not_on_4xx() {
        let out = Outgoing {
            channel: Channel::Webhook,
            endpoint: parse_url("http://127.0.0.1:9/").unwrap(),
            headers: vec![],
            body: b"{}".to_vec(),
        };
        let mut t =
            Scripted { answers: vec![Err("connection refused".into()), Ok(503), Ok(204)], posts: 0, pauses: vec![] };
        let d = deliver(&mut t, &out, 1, Notice::Fired, Duration::from_secs(1), 3);
        assert!(d.delivered);
        assert_eq!(d.attempts.len(), 3);
        assert_eq!(d.attempts[0].error.as_deref(), Some("connection refused"));
        assert_eq!((d.attempts[1].status, d.attempts[2].status), (Some(503), Some(204)));
        assert_eq!(t.pauses, [Duration::from_millis(500), Duration::from_millis(1000)]);
        // A 400 will not change by retrying.
        let mut t = Scripted { answers: vec![Ok(400)], posts: 0, pauses: vec![] };
        let d = deliver(&mut t, &out, 1, Notice::Fired, Duration::from_secs(1), 3);
        assert_eq!((d.delivered, t.posts), (false, 1));
        // Every attempt fails: 1 + retries of them.
        let mut t = Scripted { answers: vec![Ok(500), Ok(502), Ok(429)], posts: 0, pauses: vec![] };
        let d = deliver(&mut t, &out, 1, Notice::Resolved, Duration::from_secs(1), 2);
        assert_eq!((d.delivered, d.attempts.len()), (false, 3));
        assert_eq!(d.attempts[2].error.as_deref(), Some("receiver answered 429"));
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(10), Duration::from_secs(8));
    }
}
