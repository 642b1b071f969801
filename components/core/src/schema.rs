//! The SQL schema as an ordered list of migrations. Every component applies what is missing on first use
//! (so the app works under the Spin CLI too), and the host applies them at start-up.
//! A migration is never edited once released: add a new one.

use crate::storage::{Database, SqlValue, StorageError};

/// One schema step: its version (1, 2, …), a short name, and its statements.
pub struct Migration {
    /// Version this migration brings the schema to.
    pub version: i64,
    /// What it adds, for the migrations table and logs.
    pub name: &'static str,
    /// SQL statements, run in order inside one transaction.
    pub statements: &'static [&'static str],
}

/// Every migration, in order. `LATEST` is the last one's version.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "platform: bars, registry, jobs, backups",
        statements: &[
            "CREATE TABLE IF NOT EXISTS bars (
            symbol TEXT NOT NULL,
            date TEXT NOT NULL,
            open REAL NOT NULL,
            high REAL NOT NULL,
            low REAL NOT NULL,
            close REAL NOT NULL,
            volume REAL NOT NULL,
            vwap REAL,
            factor REAL,
            PRIMARY KEY (symbol, date)
        ) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS bars_date ON bars (date)",
            "CREATE TABLE IF NOT EXISTS model_versions (
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('training', 'ready', 'failed')),
            created_at TEXT NOT NULL,
            PRIMARY KEY (name, version)
        )",
            "CREATE TABLE IF NOT EXISTS model_aliases (
            name TEXT NOT NULL,
            alias TEXT NOT NULL,
            version INTEGER NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (name, alias)
        )",
            "CREATE TABLE IF NOT EXISTS train_jobs (
            id TEXT PRIMARY KEY,
            model_name TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
            created_at TEXT NOT NULL,
            finished_at TEXT,
            error TEXT
        )",
            "CREATE TABLE IF NOT EXISTS backups (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('writing', 'verified', 'failed')),
            size_bytes INTEGER,
            sha256 TEXT
        )",
        ],
    },
    Migration {
        version: 2,
        name: "registry: version cards, chunked artifacts, alias audit, job specs",
        statements: &[
            // What a version is: filled while status = 'training', complete once 'ready'.
            "ALTER TABLE model_versions ADD COLUMN job_id TEXT",
            "ALTER TABLE model_versions ADD COLUMN feature_set TEXT",
            "ALTER TABLE model_versions ADD COLUMN feature_set_version TEXT",
            "ALTER TABLE model_versions ADD COLUMN data_from TEXT",
            "ALTER TABLE model_versions ADD COLUMN data_to TEXT",
            "ALTER TABLE model_versions ADD COLUMN params TEXT",
            "ALTER TABLE model_versions ADD COLUMN metrics TEXT",
            "ALTER TABLE model_versions ADD COLUMN card TEXT",
            "ALTER TABLE model_versions ADD COLUMN artifact_sha256 TEXT",
            "ALTER TABLE model_versions ADD COLUMN artifact_size INTEGER",
            "ALTER TABLE model_versions ADD COLUMN finished_at TEXT",
            "ALTER TABLE model_versions ADD COLUMN error TEXT",
            // Artifacts of a version by kind ('onnx' is the source of truth; 'plan' and 'booster' derive from
            // it or from the same training run), split in chunks so no single value grows without bound.
            "CREATE TABLE IF NOT EXISTS model_artifacts (
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            kind TEXT NOT NULL,
            chunk INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (name, version, kind, chunk)
        )",
            "CREATE TABLE IF NOT EXISTS model_alias_audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            alias TEXT NOT NULL,
            from_version INTEGER,
            to_version INTEGER NOT NULL,
            actor TEXT NOT NULL,
            reason TEXT,
            at TEXT NOT NULL
        )",
            "ALTER TABLE train_jobs ADD COLUMN spec TEXT",
            "ALTER TABLE train_jobs ADD COLUMN version INTEGER",
            "ALTER TABLE train_jobs ADD COLUMN result TEXT",
            "ALTER TABLE train_jobs ADD COLUMN trigger TEXT",
        ],
    },
    Migration {
        version: 3,
        name: "serving: prediction log, champion/challenger experiments",
        statements: &[
            "CREATE TABLE IF NOT EXISTS predictions (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at TEXT NOT NULL,
                model TEXT NOT NULL,
                version INTEGER NOT NULL,
                variant TEXT NOT NULL,
                experiment TEXT,
                symbol TEXT,
                date TEXT,
                features_sha256 TEXT NOT NULL,
                score REAL NOT NULL,
                latency_us INTEGER NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS predictions_experiment ON predictions (experiment, variant, symbol, date)",
            "CREATE INDEX IF NOT EXISTS predictions_model_date ON predictions (model, date)",
            // At most one experiment per model: it splits that model's traffic between two aliases.
            "CREATE TABLE IF NOT EXISTS experiments (
                name TEXT PRIMARY KEY,
                model TEXT NOT NULL UNIQUE,
                champion_alias TEXT NOT NULL,
                challenger_alias TEXT NOT NULL,
                challenger_share REAL NOT NULL CHECK (challenger_share >= 0 AND challenger_share <= 1),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )",
        ],
    },
    Migration {
        version: 4,
        name: "operations: backup details, alert rules, alerts and their history",
        statements: &[
            // A backup row is 'writing' until its archive is stored and read back verified.
            "ALTER TABLE backups ADD COLUMN verified_at TEXT",
            "ALTER TABLE backups ADD COLUMN schema_version INTEGER",
            "ALTER TABLE backups ADD COLUMN manifest TEXT",
            "ALTER TABLE backups ADD COLUMN trigger TEXT",
            "ALTER TABLE backups ADD COLUMN error TEXT",
            // Rules as set through the API; a rule here overrides the rules file's rule of the same id.
            "CREATE TABLE IF NOT EXISTS alert_rules (
                id TEXT PRIMARY KEY,
                rule TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                updated_by TEXT
            )",
            // One row per incident: an alert fires once per fingerprint and stays firing until resolved.
            "CREATE TABLE IF NOT EXISTS alerts (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                fingerprint TEXT NOT NULL,
                rule_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                severity TEXT NOT NULL CHECK (severity IN ('warning', 'critical')),
                state TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
                summary TEXT NOT NULL,
                details TEXT,
                value REAL,
                started_at TEXT NOT NULL,
                last_seen_at TEXT NOT NULL,
                last_notified_at TEXT,
                notify_count INTEGER NOT NULL DEFAULT 0,
                resolved_at TEXT,
                acked_at TEXT,
                acked_by TEXT
            )",
            "CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_firing ON alerts (fingerprint) WHERE state = 'firing'",
            "CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, started_at)",
            // What happened to each alert: fired, notified, notify_failed, repeated, escalated, acked, resolved.
            "CREATE TABLE IF NOT EXISTS alert_events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                alert_id INTEGER NOT NULL,
                at TEXT NOT NULL,
                event TEXT NOT NULL,
                detail TEXT
            )",
            "CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id, id)",
        ],
    },
    Migration {
        version: 5,
        name: "features: a revision per symbol's bars",
        statements: &[
            // Bumped in the transaction that writes a symbol's bars; the feature cache keys on it, so a
            // matrix computed from older bars is never read back, whenever its write lands.
            "CREATE TABLE IF NOT EXISTS bar_revisions (
                symbol TEXT PRIMARY KEY,
                revision INTEGER NOT NULL
            ) WITHOUT ROWID",
        ],
    },
    Migration {
        version: 6,
        name: "features: bars packed a year to a blob",
        statements: &[
            // Derived from `bars` in the transaction that writes them (features' `bar_chunks`): a
            // symbol's history in a dozen values instead of eight a bar. A rowid table: its rows are
            // blobs of several pages.
            "CREATE TABLE IF NOT EXISTS bar_chunks (
                symbol TEXT NOT NULL,
                year INTEGER NOT NULL,
                bars BLOB NOT NULL,
                PRIMARY KEY (symbol, year)
            )",
        ],
    },
    Migration {
        version: 7,
        name: "serving: the experiment index holds experiment traffic only",
        statements: &[
            // Every query on it names an experiment. Indexing every prediction by symbol dirtied a
            // page per row of a universe-wide request (300 rows: 8 -> 3 ms to log).
            "DROP INDEX IF EXISTS predictions_experiment",
            "CREATE INDEX IF NOT EXISTS predictions_experiment ON predictions (experiment, variant, symbol, date) \
             WHERE experiment IS NOT NULL",
        ],
    },
];

/// The schema version this build expects.
pub const LATEST: i64 = 7;

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

/// The database's current schema version (0 when never migrated).
pub fn current_version(db: &impl Database) -> Result<i64, StorageError> {
    let found =
        db.execute("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'", &[])?;
    if found.i64(0, "n").unwrap_or(0) == 0 {
        return Ok(0);
    }
    let rows = db.execute("SELECT coalesce(max(version), 0) AS v FROM schema_migrations", &[])?;
    Ok(rows.i64(0, "v").unwrap_or(0))
}

/// Outcome of `migrate`: where the schema was and where it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationReport {
    /// Version found before migrating.
    pub from: i64,
    /// Version after migrating.
    pub to: i64,
}

/// Brings the schema up to `LATEST`, each missing migration in its own transaction.
/// Safe to call concurrently from several instances: the version is re-read under the write lock.
/// A database newer than this build is refused rather than touched.
pub fn migrate(db: &impl Database) -> Result<MigrationReport, StorageError> {
    let from = current_version(db)?;
    if from == LATEST {
        return Ok(MigrationReport { from, to: from });
    }
    if from > LATEST {
        return Err(StorageError::Backend(format!(
            "database schema version {from} is newer than this build's {LATEST}: upgrade stockops"
        )));
    }
    db.execute(CREATE_MIGRATIONS_TABLE, &[])?;
    for m in MIGRATIONS {
        db.transaction(|tx| {
            let applied = tx.execute("SELECT 1 AS x FROM schema_migrations WHERE version = ?", &[m.version.into()])?;
            if !applied.rows.is_empty() {
                return Ok(());
            }
            for sql in m.statements {
                tx.execute(sql, &[])?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                &[m.version.into(), m.name.into(), SqlValue::Text(crate::now_rfc3339())],
            )?;
            Ok(())
        })?;
    }
    Ok(MigrationReport { from, to: current_version(db)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_latest_matches() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "migration {} out of order", m.name);
            assert!(!m.statements.is_empty());
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(LATEST));
    }
}
