//! The model registry in the SQL database (through the storage seam, so the wasm components and the native
//! host share it): versions numbered per model, their cards and metrics, artifacts as chunked blobs, aliases
//! (`champion`, `challenger`, …) moved atomically with an audit row. A version is written with status
//! `training`, and becomes `ready` (visible to readers) in the one transaction that stores its artifacts;
//! a failed or interrupted run leaves it `training` or `failed`, never visible.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use stockops_core::{Database, SqlValue, StorageError, now_rfc3339};
use thiserror::Error;

/// Artifacts are stored in chunks of this many bytes.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The artifact kind that is the source of truth for serving.
pub const ONNX: &str = "onnx";

/// A registry failure, by what the caller can do about it.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// A name, alias or version is malformed.
    #[error("{0}")]
    Invalid(String),
    /// No such model, version or alias.
    #[error("{0}")]
    NotFound(String),
    /// A stored artifact does not match its recorded checksum.
    #[error("artifact {kind} of {name} v{version} is corrupt: {why}")]
    Corrupt {
        /// Model name.
        name: String,
        /// Version number.
        version: i64,
        /// Artifact kind.
        kind: String,
        /// What does not match.
        why: String,
    },
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Model names: 1 to 64 of `A-Z a-z 0-9 _ - .`.
pub fn check_model_name(name: &str) -> Result<(), RegistryError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    ok.then_some(()).ok_or_else(|| {
        RegistryError::Invalid(format!("model name {name:?} must be 1 to 64 characters of A-Z a-z 0-9 _ - ."))
    })
}

/// Alias names: 1 to 32 of `a-z 0-9 _ -`.
pub fn check_alias(alias: &str) -> Result<(), RegistryError> {
    let ok = (1..=32).contains(&alias.len())
        && alias.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    ok.then_some(())
        .ok_or_else(|| RegistryError::Invalid(format!("alias {alias:?} must be 1 to 32 characters of a-z 0-9 _ -")))
}

/// What is known of a version when its training starts.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// Model name.
    pub name: &'a str,
    /// Training job that produces it ("" for an imported model).
    pub job_id: &'a str,
    /// Feature set name and its version hash.
    pub feature_set: &'a str,
    /// Version hash of the feature set's definition.
    pub feature_set_version: &'a str,
    /// First and last date of the data the version was trained and tested on.
    pub data_from: &'a str,
    /// Last date of that data.
    pub data_to: &'a str,
}

/// Takes the next version number of `new.name` and records it as `training` (invisible to readers).
pub fn begin_version(db: &impl Database, new: &NewVersion) -> Result<i64, RegistryError> {
    check_model_name(new.name)?;
    Ok(db.transaction(|tx| {
        let rows = tx.execute(
            "SELECT coalesce(max(version), 0) + 1 AS v FROM model_versions WHERE name = ?",
            &[new.name.into()],
        )?;
        let version = rows.i64(0, "v").unwrap_or(1);
        tx.execute(
            "INSERT INTO model_versions (name, version, status, created_at, job_id, feature_set, \
             feature_set_version, data_from, data_to) VALUES (?, ?, 'training', ?, ?, ?, ?, ?, ?)",
            &[
                new.name.into(),
                version.into(),
                now_rfc3339().into(),
                // Imported models have no job.
                Some(new.job_id).filter(|j| !j.is_empty()).into(),
                new.feature_set.into(),
                new.feature_set_version.into(),
                new.data_from.into(),
                new.data_to.into(),
            ],
        )?;
        Ok(version)
    })?)
}

/// One artifact to store with a version.
#[derive(Debug, Clone, Copy)]
pub struct Artifact<'a> {
    /// Kind: [`ONNX`] (required), or a derived form such as `plan` or `booster`.
    pub kind: &'a str,
    /// The bytes.
    pub bytes: &'a [u8],
}

/// Stores the artifacts, params, metrics and card of a `training` version and makes it `ready`, all in one
/// transaction: readers see the whole version or nothing.
pub fn complete_version(
    db: &impl Database,
    name: &str,
    version: i64,
    params: &Value,
    metrics: &Value,
    card: &Value,
    artifacts: &[Artifact],
) -> Result<(), RegistryError> {
    let onnx = artifacts
        .iter()
        .find(|a| a.kind == ONNX)
        .ok_or_else(|| RegistryError::Invalid("a version needs an onnx artifact".into()))?;
    let sha = hex::encode(Sha256::digest(onnx.bytes));
    Ok(db.transaction(|tx| {
        tx.execute("DELETE FROM model_artifacts WHERE name = ? AND version = ?", &[name.into(), version.into()])?;
        for a in artifacts {
            for (i, chunk) in a.bytes.chunks(CHUNK_BYTES).enumerate() {
                tx.execute(
                    "INSERT INTO model_artifacts (name, version, kind, chunk, data) VALUES (?, ?, ?, ?, ?)",
                    &[name.into(), version.into(), a.kind.into(), (i as i64).into(), SqlValue::Blob(chunk.to_vec())],
                )?;
            }
        }
        let updated = tx.execute(
            "UPDATE model_versions SET status = 'ready', params = ?, metrics = ?, card = ?, artifact_sha256 = ?, \
             artifact_size = ?, finished_at = ? WHERE name = ? AND version = ? AND status = 'training' \
             RETURNING version",
            &[
                params.to_string().into(),
                metrics.to_string().into(),
                card.to_string().into(),
                sha.clone().into(),
                (onnx.bytes.len() as i64).into(),
                now_rfc3339().into(),
                name.into(),
                version.into(),
            ],
        )?;
        if updated.rows.is_empty() {
            return Err(StorageError::Backend(format!("{name} v{version} is not in training: cannot complete it")));
        }
        Ok(())
    })?)
}

/// Marks a `training` version `failed` with the reason, and drops any artifact written for it.
pub fn fail_version(db: &impl Database, name: &str, version: i64, error: &str) -> Result<(), RegistryError> {
    Ok(db.transaction(|tx| {
        tx.execute("DELETE FROM model_artifacts WHERE name = ? AND version = ?", &[name.into(), version.into()])?;
        tx.execute(
            "UPDATE model_versions SET status = 'failed', error = ?, finished_at = ? \
             WHERE name = ? AND version = ? AND status = 'training'",
            &[error.into(), now_rfc3339().into(), name.into(), version.into()],
        )?;
        Ok(())
    })?)
}

/// A version as the registry reports it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRecord {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: i64,
    /// `training`, `ready` or `failed`.
    pub status: String,
    /// When training started (RFC 3339, UTC).
    pub created_at: String,
    /// When it became ready or failed.
    pub finished_at: Option<String>,
    /// Job that produced it (None for imported models).
    pub job_id: Option<String>,
    /// Feature set name.
    pub feature_set: Option<String>,
    /// Version hash of the feature set.
    pub feature_set_version: Option<String>,
    /// First date of the data.
    pub data_from: Option<String>,
    /// Last date of the data.
    pub data_to: Option<String>,
    /// Training parameters.
    pub params: Value,
    /// Test metrics and training summary.
    pub metrics: Value,
    /// Model card: feature names, importance, what serving needs.
    pub card: Value,
    /// sha256 of the ONNX artifact.
    pub artifact_sha256: Option<String>,
    /// Size of the ONNX artifact in bytes.
    pub artifact_size: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Aliases pointing at this version.
    pub aliases: Vec<String>,
}

const VERSION_COLUMNS: &str = "name, version, status, created_at, finished_at, job_id, feature_set, \
    feature_set_version, data_from, data_to, params, metrics, card, artifact_sha256, artifact_size, error";

fn version_at(db: &impl Database, rows: &stockops_core::Rows, i: usize) -> Result<VersionRecord, RegistryError> {
    let text = |c: &str| rows.text(i, c).map(str::to_string);
    let json = |c: &str| rows.text(i, c).and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null);
    let name = text("name").unwrap_or_default();
    let version = rows.i64(i, "version").unwrap_or(0);
    let aliases = db.execute(
        "SELECT alias FROM model_aliases WHERE name = ? AND version = ? ORDER BY alias",
        &[name.clone().into(), version.into()],
    )?;
    Ok(VersionRecord {
        aliases: (0..aliases.rows.len()).filter_map(|k| aliases.text(k, "alias").map(str::to_string)).collect(),
        name,
        version,
        status: text("status").unwrap_or_default(),
        created_at: text("created_at").unwrap_or_default(),
        finished_at: text("finished_at"),
        job_id: text("job_id"),
        feature_set: text("feature_set"),
        feature_set_version: text("feature_set_version"),
        data_from: text("data_from"),
        data_to: text("data_to"),
        params: json("params"),
        metrics: json("metrics"),
        card: json("card"),
        artifact_sha256: text("artifact_sha256"),
        artifact_size: rows.i64(i, "artifact_size"),
        error: text("error"),
    })
}

/// One version, whatever its status.
pub fn get_version(db: &impl Database, name: &str, version: i64) -> Result<VersionRecord, RegistryError> {
    let rows = db.execute(
        &format!("SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = ? AND version = ?"),
        &[name.into(), version.into()],
    )?;
    if rows.rows.is_empty() {
        return Err(RegistryError::NotFound(format!("model {name} has no version {version}")));
    }
    version_at(db, &rows, 0)
}

/// A model's versions, newest first.
pub fn list_versions(db: &impl Database, name: &str) -> Result<Vec<VersionRecord>, RegistryError> {
    let rows = db.execute(
        &format!("SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = ? ORDER BY version DESC"),
        &[name.into()],
    )?;
    (0..rows.rows.len()).map(|i| version_at(db, &rows, i)).collect()
}

/// A model in the listing.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// Model name.
    pub name: String,
    /// Number of ready versions.
    pub ready_versions: i64,
    /// Newest ready version.
    pub latest_ready: Option<i64>,
    /// Alias → version.
    pub aliases: serde_json::Map<String, Value>,
}

/// Every model with its ready versions and aliases, by name.
pub fn list_models(db: &impl Database) -> Result<Vec<ModelSummary>, RegistryError> {
    let rows = db.execute(
        "SELECT name, sum(status = 'ready') AS ready, max(CASE WHEN status = 'ready' THEN version END) AS latest \
         FROM model_versions GROUP BY name ORDER BY name",
        &[],
    )?;
    let aliases = db.execute("SELECT name, alias, version FROM model_aliases ORDER BY name, alias", &[])?;
    Ok((0..rows.rows.len())
        .map(|i| {
            let name = rows.text(i, "name").unwrap_or_default().to_string();
            let aliases = (0..aliases.rows.len())
                .filter(|&k| aliases.text(k, "name") == Some(name.as_str()))
                .map(|k| (aliases.text(k, "alias").unwrap_or_default().to_string(), aliases.i64(k, "version").into()))
                .collect();
            ModelSummary {
                ready_versions: rows.i64(i, "ready").unwrap_or(0),
                latest_ready: rows.i64(i, "latest"),
                aliases,
                name,
            }
        })
        .collect())
}

/// The bytes of a ready version's artifact of `kind`; the ONNX artifact is checked against its sha256.
pub fn read_artifact(db: &impl Database, name: &str, version: i64, kind: &str) -> Result<Vec<u8>, RegistryError> {
    let status = db.execute(
        "SELECT status, artifact_sha256, artifact_size FROM model_versions WHERE name = ? AND version = ?",
        &[name.into(), version.into()],
    )?;
    if status.text(0, "status") != Some("ready") {
        return Err(RegistryError::NotFound(format!("model {name} has no ready version {version}")));
    }
    let rows = db.execute(
        "SELECT chunk, data FROM model_artifacts WHERE name = ? AND version = ? AND kind = ? ORDER BY chunk",
        &[name.into(), version.into(), kind.into()],
    )?;
    if rows.rows.is_empty() {
        return Err(RegistryError::NotFound(format!("model {name} v{version} has no {kind} artifact")));
    }
    let corrupt = |why: String| RegistryError::Corrupt { name: name.into(), version, kind: kind.into(), why };
    let mut bytes = Vec::new();
    for i in 0..rows.rows.len() {
        if rows.i64(i, "chunk") != Some(i as i64) {
            return Err(corrupt(format!("chunk {i} is missing")));
        }
        bytes.extend_from_slice(rows.blob(i, "data").unwrap_or_default());
    }
    if kind == ONNX {
        let sha = hex::encode(Sha256::digest(&bytes));
        if Some(sha.as_str()) != status.text(0, "artifact_sha256") {
            return Err(corrupt(format!(
                "sha256 is {sha}, the registry recorded {:?}",
                status.text(0, "artifact_sha256")
            )));
        }
    }
    Ok(bytes)
}

/// The version an alias points at, if set.
pub fn resolve_alias(db: &impl Database, name: &str, alias: &str) -> Result<Option<i64>, RegistryError> {
    let rows =
        db.execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?", &[name.into(), alias.into()])?;
    Ok(rows.i64(0, "version"))
}

/// An alias move as recorded in the audit log.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AliasMove {
    /// Model name.
    pub name: String,
    /// Alias moved.
    pub alias: String,
    /// Version it pointed at before (None when new).
    pub from_version: Option<i64>,
    /// Version it points at now.
    pub to_version: i64,
    /// Who moved it.
    pub actor: String,
    /// Why, as given.
    pub reason: Option<String>,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// Points `alias` of `name` at a ready `version` and records the move, in one transaction.
pub fn set_alias(
    db: &impl Database,
    name: &str,
    alias: &str,
    version: i64,
    actor: &str,
    reason: Option<&str>,
) -> Result<AliasMove, RegistryError> {
    check_model_name(name)?;
    check_alias(alias)?;
    let at = now_rfc3339();
    let outcome = db.transaction(|tx| {
        let ready = tx.execute(
            "SELECT 1 AS x FROM model_versions WHERE name = ? AND version = ? AND status = 'ready'",
            &[name.into(), version.into()],
        )?;
        if ready.rows.is_empty() {
            return Ok(None);
        }
        let before = tx
            .execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?", &[name.into(), alias.into()])?
            .i64(0, "version");
        tx.execute(
            "INSERT INTO model_aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
            &[name.into(), alias.into(), version.into(), at.clone().into()],
        )?;
        tx.execute(
            "INSERT INTO model_alias_audit (name, alias, from_version, to_version, actor, reason, at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            &[
                name.into(),
                alias.into(),
                before.map_or(SqlValue::Null, SqlValue::Integer),
                version.into(),
                actor.into(),
                reason.map_or(SqlValue::Null, |r| r.into()),
                at.clone().into(),
            ],
        )?;
        Ok(Some(before))
    })?;
    match outcome {
        None => Err(RegistryError::NotFound(format!("model {name} has no ready version {version}"))),
        Some(from_version) => Ok(AliasMove {
            name: name.into(),
            alias: alias.into(),
            from_version,
            to_version: version,
            actor: actor.into(),
            reason: reason.map(str::to_string),
            at,
        }),
    }
}

/// A model's alias moves, newest first.
pub fn alias_history(db: &impl Database, name: &str) -> Result<Vec<AliasMove>, RegistryError> {
    let rows = db.execute(
        "SELECT alias, from_version, to_version, actor, reason, at FROM model_alias_audit WHERE name = ? \
         ORDER BY id DESC",
        &[name.into()],
    )?;
    Ok((0..rows.rows.len())
        .map(|i| AliasMove {
            name: name.into(),
            alias: rows.text(i, "alias").unwrap_or_default().into(),
            from_version: rows.i64(i, "from_version"),
            to_version: rows.i64(i, "to_version").unwrap_or(0),
            actor: rows.text(i, "actor").unwrap_or_default().into(),
            reason: rows.text(i, "reason").map(str::to_string),
            at: rows.text(i, "at").unwrap_or_default().into(),
        })
        .collect())
}

impl From<RegistryError> for stockops_core::ApiError {
    fn from(e: RegistryError) -> Self {
        use stockops_core::ApiError;
        match &e {
            RegistryError::Invalid(_) => ApiError::bad_request("invalid", e.to_string()),
            RegistryError::NotFound(_) => ApiError::not_found(e.to_string()),
            RegistryError::Corrupt { .. } => ApiError::internal(e.to_string()),
            RegistryError::Storage(s) => s.clone().into(),
        }
    }
}
