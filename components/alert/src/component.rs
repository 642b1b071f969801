//! The Spin entry point: alerts (`/api/alerts`), their acknowledgement, the rules in force
//! (`/api/alerts/rules`), an evaluation on demand (`/api/alerts/evaluate`), and the cron trigger that evaluates
//! every rule and notifies. Logic lives in the library; this module only speaks HTTP.

use serde::Deserialize;
use serde_json::{Value, json};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use stockops_core::spin_backend::SpinKv;
use stockops_core::spin_http::{Query, body, database, json, require_auth, require_read_auth, serve};
use stockops_core::{ApiError, Database};

use crate::alerts::{self, Ack};
use crate::evaluate::{self, Report};
use crate::notify::Channels;
use crate::outbound::WasiHttp;
use crate::rules::{self, Defaults, Rule, RuleError};
use crate::ruleset::{self, Effective, RulesFile};

/// Where spin.toml mounts the rules file (`files = [{ source = "config", destination = "/config" }]`).
const RULES_FILE: &str = "/config/alert_rules.toml";

/// Largest request body (a rule set).
const MAX_BODY: usize = 256 * 1024;

/// Default and largest page of `GET /api/alerts`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[http_component]
fn handle(req: Request) -> Response {
    serve(&req, route)
}

fn route(req: &Request) -> Result<Response, ApiError> {
    let path = req.path().to_string();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let allowed: &[&str] = match segments[..] {
        ["api", "alerts"] => match method {
            Method::Get => return list(req),
            _ => &["GET"],
        },
        ["api", "alerts", "evaluate"] => match method {
            Method::Post => return post_evaluate(req),
            _ => &["POST"],
        },
        ["api", "alerts", "rules"] => match method {
            Method::Get => return get_rules(req),
            Method::Put => return put_rules(req),
            _ => &["GET", "PUT"],
        },
        ["api", "alerts", "rules", id] => match method {
            Method::Get => return get_rule(req, id),
            Method::Put => return put_rule(req, id),
            Method::Delete => return delete_rule(req, id),
            _ => &["DELETE", "GET", "PUT"],
        },
        ["api", "alerts", id] => match method {
            Method::Get => return get_alert(req, id),
            _ => &["GET"],
        },
        ["api", "alerts", id, "ack"] => match method {
            Method::Post => return post_ack(req, id),
            _ => &["POST"],
        },
        _ => return Err(ApiError::not_found(format!("no such path: {path}"))),
    };
    let e = ApiError::method_not_allowed(&method.to_string(), &path, allowed);
    Ok(Response::builder()
        .status(e.status)
        .header("content-type", "application/json")
        .header("allow", allowed.join(", "))
        .body(e.body())
        .build())
}

fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name).ok()
}

/// A variable the component cannot work with: evaluation stops before any alert changes, so nothing fires
/// unnotified.
fn config_error(message: String) -> ApiError {
    ApiError::new(500, "invalid_config", message)
}

/// The defaults the rules take from variables (the limits `/health` uses).
fn defaults() -> Result<Defaults, ApiError> {
    let d = Defaults::default();
    let number = |name: &str, default: f64| match variable(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    {
        None => Ok(default),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| config_error(format!("variable {name} = {v:?} is not a number of at least 0"))),
    };
    Ok(Defaults {
        bar_max_age_days: number("bar_max_age_days", d.bar_max_age_days)?,
        backup_max_age_hours: number("backup_max_age_hours", d.backup_max_age_hours)?,
    })
}

/// The rules file, or None when none is mounted (the built-in rules apply).
fn rules_file() -> Result<RulesFile, ApiError> {
    let text = match std::fs::read_to_string(RULES_FILE) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(ApiError::internal(format!("reading {RULES_FILE}: {e}"))),
    };
    Ok(RulesFile { path: RULES_FILE.to_string(), text })
}

fn effective_rules(db: &impl Database) -> Result<(Vec<Effective>, RulesFile), ApiError> {
    let file = rules_file()?;
    let rules = ruleset::effective(&file, db, &defaults()?)?;
    Ok((rules, file))
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn stamp() -> String {
    now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One evaluation with this component's stores, rules, variables and sender.
fn run_evaluation() -> Result<Report, ApiError> {
    let (db, kv) = (database()?, SpinKv::open_default()?);
    let (rules, _) = effective_rules(&db)?;
    let channels = Channels::from_vars(variable).map_err(config_error)?;
    Ok(evaluate::run(&db, &kv, &rules, defaults()?, &channels, &mut WasiHttp, now())?)
}

/// `POST /api/alerts/evaluate`: evaluates every rule now, notifies, and answers the report.
fn post_evaluate(req: &Request) -> Result<Response, ApiError> {
    require_auth(req)?;
    Ok(json(200, &run_evaluation()?))
}

/// `GET /api/alerts?state=firing|resolved&rule=<id>&limit=<1..1000>`: newest first.
fn list(req: &Request) -> Result<Response, ApiError> {
    require_read_auth(req)?;
    let q = Query::parse(req.query());
    let state = q.get("state");
    if let Some(s) = state
        && s != "firing"
        && s != "resolved"
    {
        return Err(ApiError::bad_request("bad_query", format!("state={s:?}: use firing or resolved")));
    }
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
            ApiError::bad_request("bad_query", format!("limit={l:?}: use a whole number from 1 to {MAX_LIMIT}"))
        })?,
    };
    let found = alerts::list(&database()?, state, q.get("rule"), limit)?;
    Ok(json(200, &json!({ "alerts": found })))
}

fn alert_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ApiError::bad_request("invalid", format!("alert id {text:?} is not a positive integer")))
}

/// `GET /api/alerts/{id}`: the alert with its history.
fn get_alert(req: &Request, id: &str) -> Result<Response, ApiError> {
    require_read_auth(req)?;
    let id = alert_id(id)?;
    let db = database()?;
    let alert = alerts::get(&db, id)?.ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    let mut answer = serde_json::to_value(&alert).map_err(|e| ApiError::internal(e.to_string()))?;
    answer["events"] = serde_json::to_value(alerts::events(&db, id)?).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json(200, &answer))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/alerts/{id}/ack` with an optional `{"by": "...", "note": "..."}`: no more repeats while it fires.
fn post_ack(req: &Request, id: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    let id = alert_id(id)?;
    let raw = body(req, MAX_BODY)?;
    let b: AckBody = if raw.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        serde_json::from_slice(raw).map_err(|e| ApiError::bad_request("invalid", format!("ack body: {e}")))?
    };
    if b.by.as_ref().is_some_and(|by| by.is_empty() || by.len() > 100) {
        return Err(ApiError::bad_request("invalid", "by: 1 to 100 characters"));
    }
    if b.note.as_ref().is_some_and(|n| n.len() > 1000) {
        return Err(ApiError::bad_request("invalid", "note: at most 1000 characters"));
    }
    // The shared API token names no person: the caller may say who they are, else it is "api".
    let by = b.by.as_deref().unwrap_or("api");
    match alerts::ack(&database()?, id, by, b.note.as_deref(), &stamp())? {
        Ack::Acked(a) | Ack::Already(a) => Ok(json(200, &a)),
        Ack::NotFiring(a) => {
            Err(ApiError::new(409, "not_firing", format!("alert {} is {}: nothing to acknowledge", a.id, a.state)))
        }
        Ack::NotFound => Err(ApiError::not_found(format!("no alert {id}"))),
    }
}

fn rules_answer(rules: &[Effective], file: &RulesFile) -> Value {
    json!({ "rules": rules, "rules_file": { "path": file.path, "found": file.text.is_some() } })
}

/// `GET /api/alerts/rules`: the rules in force, each with its source.
fn get_rules(req: &Request) -> Result<Response, ApiError> {
    require_auth(req)?;
    let (rules, file) = effective_rules(&database()?)?;
    Ok(json(200, &rules_answer(&rules, &file)))
}

fn find(rules: Vec<Effective>, id: &str) -> Result<Effective, ApiError> {
    rules.into_iter().find(|r| r.rule.id == id).ok_or_else(|| ApiError::not_found(format!("no rule {id}")))
}

/// `GET /api/alerts/rules/{id}`.
fn get_rule(req: &Request, id: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    let (rules, _) = effective_rules(&database()?)?;
    Ok(json(200, &find(rules, id)?))
}

fn invalid(e: RuleError) -> ApiError {
    ApiError::bad_request("invalid_rule", e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesBody {
    rules: Vec<Value>,
    #[serde(default)]
    by: Option<String>,
}

/// `PUT /api/alerts/rules` with `{"rules": [rule, …], "by"?: "..."}`: stores each rule by id (overriding the
/// file's rule of that id), all or none; answers the rules in force.
fn put_rules(req: &Request) -> Result<Response, ApiError> {
    require_auth(req)?;
    let b: RulesBody = serde_json::from_slice(body(req, MAX_BODY)?)
        .map_err(|e| ApiError::bad_request("invalid_rule", format!("rules body: {e}")))?;
    if b.rules.is_empty() {
        return Err(ApiError::bad_request("invalid_rule", "rules: give at least one rule"));
    }
    let mut parsed: Vec<Rule> = Vec::with_capacity(b.rules.len());
    for (i, value) in b.rules.into_iter().enumerate() {
        let rule = rules::rule_from_json(value).map_err(|e| invalid(e.under(&format!("rules[{i}]"))))?;
        if parsed.iter().any(|r| r.id == rule.id) {
            return Err(ApiError::bad_request("invalid_rule", format!("rules[{i}].id: {:?} is given twice", rule.id)));
        }
        parsed.push(rule);
    }
    let by = b.by.unwrap_or_else(|| "api".into());
    let db = database()?;
    ruleset::store_rules(&db, &parsed, &by, &stamp())?;
    let (rules, file) = effective_rules(&db)?;
    Ok(json(200, &rules_answer(&rules, &file)))
}

/// `PUT /api/alerts/rules/{id}` with one rule (its `id` may be left out): stores it; answers it as in force.
fn put_rule(req: &Request, id: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    let mut value: Value = serde_json::from_slice(body(req, MAX_BODY)?)
        .map_err(|e| ApiError::bad_request("invalid_rule", format!("rule body: {e}")))?;
    let Some(fields) = value.as_object_mut() else {
        return Err(ApiError::bad_request("invalid_rule", "rule body: expected a JSON object"));
    };
    match fields.get("id") {
        None => {
            fields.insert("id".into(), Value::String(id.to_string()));
        }
        Some(given) if given.as_str() == Some(id) => {}
        Some(given) => {
            return Err(ApiError::bad_request("invalid_rule", format!("id: {given} differs from the path's {id:?}")));
        }
    }
    let rule = rules::rule_from_json(value).map_err(invalid)?;
    let db = database()?;
    ruleset::store_rules(&db, std::slice::from_ref(&rule), "api", &stamp())?;
    let (rules, _) = effective_rules(&db)?;
    Ok(json(200, &find(rules, id)?))
}

/// `DELETE /api/alerts/rules/{id}`: removes the rule stored through the API (the file's rule of that id, if
/// any, applies again); answers what is now in force for that id.
fn delete_rule(req: &Request, id: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    let db = database()?;
    if !ruleset::delete_rule(&db, id)? {
        return Err(ApiError::not_found(format!(
            "no rule {id} stored through the API (rules of the file change in the file, or are overridden with PUT)"
        )));
    }
    let (rules, _) = effective_rules(&db)?;
    let now_in_force = rules.into_iter().find(|r| r.rule.id == id);
    Ok(json(200, &json!({ "deleted": id, "rule": now_in_force })))
}

/// Whether `log_level` lets info lines through.
fn info_enabled() -> bool {
    !matches!(variable("log_level").as_deref().map(str::trim), Some("warn" | "error"))
}

/// The cron trigger: sweep old rate-limit counters, then evaluate every rule and notify.
fn on_cron(_timestamp: u64) -> Result<(), String> {
    let kv = SpinKv::open_default().map_err(|e| e.to_string())?;
    match stockops_core::rate_limit::sweep(&kv, now().timestamp().max(0) as u64) {
        Ok(n) if n > 0 && info_enabled() => eprintln!("rate limit: removed {n} old counters"),
        Ok(_) => {}
        Err(e) => eprintln!("rate limit sweep failed: {e}"),
    }
    let report = run_evaluation().map_err(|e| e.message)?;
    for r in report.rules.iter().filter(|r| r.status == crate::checks::Status::Error) {
        eprintln!("alert rule {} failed: {}", r.rule_id, r.note.as_deref().unwrap_or(""));
    }
    for d in report.notifications.iter().filter(|d| !d.delivered) {
        let last = d.attempts.last().and_then(|a| a.error.as_deref()).unwrap_or("");
        eprintln!("alert {} ({}) not delivered to {}: {last}", d.alert_id, d.event.as_str(), d.channel.as_str());
    }
    if info_enabled() {
        eprintln!(
            "alerts evaluated: {} rules, {} transitions, {} notifications, {} firing",
            report.rules.len(),
            report.transitions.len(),
            report.notifications.len(),
            report.firing
        );
    }
    Ok(())
}

stockops_core::export_cron_handler!(on_cron);
