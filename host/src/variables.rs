//! Application variables: defaults from spin.toml, overridden by `SPIN_VARIABLE_<NAME>` in the
//! environment or in the app's `.env` file (the environment wins), exactly as Spin's env provider.
//! Component variables are templates over them (`"{{ api_token }}"`), expanded once at start-up.

use crate::manifest::LoadedManifest;
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

/// The resolved variables of one component.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables {
    values: BTreeMap<String, String>,
}

impl ComponentVariables {
    /// The value of a component variable, if the component declares it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// Resolves every component's variables; lists every problem at once (missing required values,
/// templates naming unknown variables, invalid names).
pub fn resolve(
    m: &LoadedManifest,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, ComponentVariables>> {
    let dotenv = read_dotenv(&m.app_dir().join(".env"))?;
    let mut problems = Vec::new();
    let mut app = BTreeMap::new();
    for (name, def) in &m.manifest.variables {
        if !valid_name(name) {
            problems.push(format!(
                "variable `{name}`: names are lower-case letters, digits and `_`, starting with a letter"
            ));
            continue;
        }
        match value_of(name, def.default.as_deref(), env, &dotenv) {
            Some(v) => {
                app.insert(name.clone(), v);
            }
            None if def.required => problems
                .push(format!("variable `{name}` is required: set {} in the environment or in .env", env_key(name))),
            None => {}
        }
    }
    let mut out = BTreeMap::new();
    for (id, c) in &m.manifest.component {
        let mut values = BTreeMap::new();
        for (name, template) in &c.variables {
            match expand(template.get_ref(), &app) {
                Ok(v) => {
                    values.insert(name.clone(), v);
                }
                // A declared variable without a value was reported above; say it once.
                Err(TemplateError::NoValue(var)) if m.manifest.variables.contains_key(&var) => {}
                Err(e) => problems.push(format!("{}: component.{id}.variables.{name}: {e}", m.at(template.span()))),
            }
        }
        out.insert(id.clone(), ComponentVariables { values });
    }
    if !problems.is_empty() {
        bail!("{}: variables cannot be resolved:\n  - {}", m.path.display(), problems.join("\n  - "));
    }
    Ok(out)
}

/// The application variables that have a value (environment, then `.env`, then spin.toml's default), for
/// the host's native commands, which run no component.
pub fn app_values(m: &LoadedManifest, env: &dyn Fn(&str) -> Option<String>) -> Result<BTreeMap<String, String>> {
    let dotenv = read_dotenv(&m.app_dir().join(".env"))?;
    Ok(m.manifest
        .variables
        .iter()
        .filter_map(|(name, def)| Some((name.clone(), value_of(name, def.default.as_deref(), env, &dotenv)?)))
        .collect())
}

fn env_key(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_uppercase())
}

fn value_of(
    name: &str,
    default: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    dotenv: &BTreeMap<String, String>,
) -> Option<String> {
    let key = env_key(name);
    env(&key).or_else(|| dotenv.get(&key).cloned()).or_else(|| default.map(str::to_string))
}

fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why a template cannot be expanded.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` without `}}`.
    #[error("unclosed `{{{{` in `{0}`")]
    Unclosed(String),
    /// The named variable has no value.
    #[error("`{{{{ {0} }}}}` names no application variable with a value")]
    NoValue(String),
}

/// Expands `{{ name }}` templates against resolved application variables.
pub fn expand(template: &str, app: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| TemplateError::Unclosed(template.to_string()))?;
        let name = after[..end].trim();
        let value = app.get(name).ok_or_else(|| TemplateError::NoValue(name.to_string()))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads a `.env` file if there is one.
fn read_dotenv(path: &Path) -> Result<BTreeMap<String, String>> {
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let mut out = BTreeMap::new();
    for item in dotenvy::from_path_iter(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))? {
        let (k, v) = item.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        out.insert(k, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_and_unknown_names_fail() {
        let app = BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert_eq!(expand("x{{ a }}y{{a}}", &app).unwrap(), "x1y1");
        assert!(expand("{{ b }}", &app).is_err());
        assert!(expand("{{ a", &app).is_err());
    }

    #[test]
    fn env_overrides_dotenv_overrides_default_and_required_is_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spin.toml");
        std::fs::write(
            &path,
            "spin_manifest_version = 2\n[application]\nname = \"x\"\n[variables]\na = { default = \"d\" }\nb = { default = \"d\" }\nc = { required = true, secret = true }\n\
             [component.k]\nsource = \"k.wasm\"\n[component.k.variables]\na = \"{{ a }}\"\nb = \"{{ b }}\"\nc = \"{{ c }}\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(".env"), "SPIN_VARIABLE_B=from-dotenv\nSPIN_VARIABLE_C=secret\n").unwrap();
        let m = crate::manifest::load(&path).unwrap();
        let env = |k: &str| (k == "SPIN_VARIABLE_A").then(|| "from-env".to_string());
        let vars = resolve(&m, &env).unwrap();
        let k = &vars["k"];
        assert_eq!((k.get("a"), k.get("b"), k.get("c")), (Some("from-env"), Some("from-dotenv"), Some("secret")));
        std::fs::remove_file(dir.path().join(".env")).unwrap();
        let err = resolve(&m, &|_| None).unwrap_err().to_string();
        assert!(err.contains("variable `c` is required") && err.contains("SPIN_VARIABLE_C"), "{err}");
    }
}

mod host {
    use crate::bindings::fermyon::spin::variables::{Error, Host};
    use crate::state::InstanceState;

    impl Host for InstanceState {
        async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
            Ok(self
                .component
                .variables
                .get(&name)
                .map(str::to_string)
                .ok_or(Error::Undefined(format!("no variable `{name}` for this component"))))
        }
    }
}
