//! `spin:sqlite/sqlite@3.0.0` for components: one libSQL database per label (an embedded SQLite file in
//! WAL mode, or a libSQL server), pooled connections, and access limited to the labels a component lists
//! in `sqlite_databases`.

use crate::bindings::spin::sqlite::sqlite::{self as wit, Error, QueryResult, RowResult, Value};
use crate::runtime_config::SqliteConfig;
use crate::state::InstanceState;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stockops_core::{Rows, SqlValue};
use wasmtime::component::Resource;

/// How long a statement waits for another writer before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per database.
const POOL_SIZE: usize = 64;
/// Prepared statements kept per connection (the cache starts over when full).
const MAX_STATEMENTS: usize = 128;
/// Statements longer than this are not kept. Generated statements below it are (IN lists, the prediction
/// log's multi-row inserts: up to 1,000 rows, ~52 KB of SQL): a universe-wide request repeats the same
/// row count, and preparing its 300-row insert took a third of its log time.
const MAX_CACHED_SQL: usize = 64 * 1024;
/// Parameter bytes above which a statement is not kept: it would hold a copy of them while idle.
const MAX_CACHED_PARAM_BYTES: usize = 64 * 1024;

/// One configured database and its idle connections.
pub struct SqliteDatabase {
    db: libsql::Database,
    idle: Mutex<Vec<Conn>>,
    local: bool,
}

/// A connection with its prepared statements. Components send the same few short statements on every
/// request, and parsing and planning one costs more than running it (a tenth of a one-symbol prediction's
/// CPU), so an embedded database's connections keep them, keyed by their text.
pub struct Conn {
    conn: libsql::Connection,
    statements: Mutex<HashMap<String, libsql::Statement>>,
}

impl Deref for Conn {
    type Target = libsql::Connection;
    fn deref(&self) -> &libsql::Connection {
        &self.conn
    }
}

/// All databases by label.
pub type Databases = BTreeMap<String, Arc<SqliteDatabase>>;

impl SqliteDatabase {
    /// Opens (creating when needed) the database a runtime-config entry describes.
    pub async fn open(label: &str, cfg: &SqliteConfig) -> Result<Self> {
        Self::open_with_pages(label, cfg, None).await
    }

    /// [`open`](Self::open), creating a new embedded file with pages of `page_size` bytes (a power of two
    /// from 512 to 65536) instead of SQLite's 4096; an existing file keeps its own.
    pub async fn open_with_pages(label: &str, cfg: &SqliteConfig, page_size: Option<u32>) -> Result<Self> {
        let (db, local) = match cfg {
            SqliteConfig::File(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let db = libsql::Builder::new_local(path)
                    .build()
                    .await
                    .with_context(|| format!("sqlite database `{label}`: cannot open {}", path.display()))?;
                (db, true)
            }
            SqliteConfig::Libsql { url, token } => {
                let db = libsql::Builder::new_remote(url.clone(), token.clone())
                    .build()
                    .await
                    .with_context(|| format!("sqlite database `{label}`: cannot connect to {url}"))?;
                (db, false)
            }
        };
        let this = SqliteDatabase { db, idle: Mutex::new(Vec::new()), local };
        if local {
            // WAL lets readers run beside a writer; without it concurrent requests fail "database is locked".
            let conn = this.connect().await?;
            if let Some(size) = page_size {
                // Takes effect only before the file's first page is written (and never once in WAL mode).
                conn.execute(&format!("PRAGMA page_size = {size}"), ()).await.context("cannot set the page size")?;
            }
            let mut rows = conn.query("PRAGMA journal_mode = WAL", ()).await.context("cannot enable WAL")?;
            while rows.next().await?.is_some() {}
            this.release(conn);
        }
        Ok(this)
    }

    /// A connection from the pool, or a new one.
    pub async fn connect(&self) -> Result<Conn> {
        if let Some(c) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(c);
        }
        let conn = self.db.connect().context("cannot open a database connection")?;
        if self.local {
            conn.busy_timeout(BUSY_TIMEOUT).context("cannot set busy timeout")?;
            conn.execute("PRAGMA synchronous = NORMAL", ()).await.context("cannot set synchronous mode")?;
        }
        Ok(Conn { conn, statements: Mutex::new(HashMap::new()) })
    }

    /// Returns a connection to the pool, unless a transaction was left open on it. Remote connections are
    /// not kept: a libSQL server expires an idle stream after seconds, and a new one costs no round trip.
    pub fn release(&self, conn: Conn) {
        if self.local
            && conn.is_autocommit()
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < POOL_SIZE
        {
            idle.push(conn);
        }
    }

    /// Runs one statement and collects its rows, through the connection's prepared statements when
    /// the database is embedded.
    pub async fn execute(&self, conn: &Conn, sql: &str, params: Vec<SqlValue>) -> Result<Rows, libsql::Error> {
        let param_bytes: usize = params
            .iter()
            .map(|p| match p {
                SqlValue::Text(t) => t.len(),
                SqlValue::Blob(b) => b.len(),
                _ => 8,
            })
            .sum();
        if self.local && param_bytes > MAX_CACHED_PARAM_BYTES {
            // An embedded statement runs on this worker thread without yielding, for milliseconds when it
            // writes this much (a 4 MB feature matrix after the answer went out). Tasks this one just woke
            // wait in the worker's slot that no other worker may steal from, so let them run first: one
            // of them is usually the connection sending that answer.
            tokio::task::yield_now().await;
        }
        let keep = self.local && sql.len() <= MAX_CACHED_SQL && param_bytes <= MAX_CACHED_PARAM_BYTES;
        let cached = if keep { conn.statements.lock().ok().and_then(|mut s| s.remove(sql)) } else { None };
        let stmt = match cached {
            Some(stmt) => stmt,
            None => conn.prepare(sql).await?,
        };
        let params: Vec<libsql::Value> = params.into_iter().map(to_libsql).collect();
        let result = match stmt.query(params).await {
            Ok(rows) => collect(rows).await,
            Err(e) => Err(e),
        };
        // Reset even after an error: a statement left mid-way would keep its read snapshot open.
        stmt.reset();
        if keep
            && result.is_ok()
            && let Ok(mut statements) = conn.statements.lock()
        {
            if statements.len() >= MAX_STATEMENTS {
                statements.clear();
            }
            statements.insert(sql.to_string(), stmt);
        }
        result
    }
}

/// Reads every row of a result.
async fn collect(mut rows: libsql::Rows) -> Result<Rows, libsql::Error> {
    let n = rows.column_count();
    let columns = (0..n).map(|i| rows.column_name(i).unwrap_or_default().to_string()).collect();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        let mut values = Vec::with_capacity(n as usize);
        for i in 0..n {
            values.push(from_libsql(row.get_value(i)?));
        }
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
}

fn to_libsql(v: SqlValue) -> libsql::Value {
    match v {
        SqlValue::Integer(i) => libsql::Value::Integer(i),
        SqlValue::Real(f) => libsql::Value::Real(f),
        SqlValue::Text(s) => libsql::Value::Text(s),
        SqlValue::Blob(b) => libsql::Value::Blob(b),
        SqlValue::Null => libsql::Value::Null,
    }
}

fn from_libsql(v: libsql::Value) -> SqlValue {
    match v {
        libsql::Value::Integer(i) => SqlValue::Integer(i),
        libsql::Value::Real(f) => SqlValue::Real(f),
        libsql::Value::Text(s) => SqlValue::Text(s),
        libsql::Value::Blob(b) => SqlValue::Blob(b),
        libsql::Value::Null => SqlValue::Null,
    }
}

/// Opens every configured database.
pub async fn open_all(cfg: &BTreeMap<String, SqliteConfig>) -> Result<Databases> {
    let mut out = BTreeMap::new();
    for (label, c) in cfg {
        out.insert(label.clone(), Arc::new(SqliteDatabase::open(label, c).await?));
    }
    Ok(out)
}

/// A component's open connection (the WIT `connection` resource).
pub struct Connection {
    db: Arc<SqliteDatabase>,
    conn: Option<Conn>,
}

impl Connection {
    fn conn(&self) -> Result<&Conn, Error> {
        self.conn.as_ref().ok_or(Error::InvalidConnection)
    }
}

fn wit_to_value(v: Value) -> SqlValue {
    match v {
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Blob(b) => SqlValue::Blob(b),
        Value::Null => SqlValue::Null,
    }
}

fn value_to_wit(v: SqlValue) -> Value {
    match v {
        SqlValue::Integer(i) => Value::Integer(i),
        SqlValue::Real(f) => Value::Real(f),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Blob(b) => Value::Blob(b),
        SqlValue::Null => Value::Null,
    }
}

impl wit::Host for InstanceState {}

impl wit::HostConnection for InstanceState {
    async fn open(&mut self, database: String) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        if !self.component.sqlite_databases.contains(&database) {
            return Ok(Err(Error::AccessDenied));
        }
        let Some(db) = self.app.databases.get(&database).cloned() else {
            return Ok(Err(Error::NoSuchDatabase));
        };
        let conn = match db.connect().await {
            Ok(c) => c,
            Err(e) => return Ok(Err(Error::Io(format!("{e:#}")))),
        };
        Ok(Ok(self.table.push(Connection { db, conn: Some(conn) })?))
    }

    async fn execute(
        &mut self,
        this: Resource<Connection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        let c = self.table.get(&this)?;
        let conn = match c.conn() {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(e)),
        };
        let params = parameters.into_iter().map(wit_to_value).collect();
        Ok(match c.db.execute(conn, &statement, params).await {
            Ok(rows) => Ok(QueryResult {
                columns: rows.columns,
                rows: rows
                    .rows
                    .into_iter()
                    .map(|r| RowResult { values: r.into_iter().map(value_to_wit).collect() })
                    .collect(),
            }),
            Err(e) => Err(Error::Io(e.to_string())),
        })
    }

    async fn last_insert_rowid(&mut self, this: Resource<Connection>) -> wasmtime::Result<i64> {
        Ok(self.table.get(&this)?.conn.as_ref().map_or(0, |c| c.last_insert_rowid()))
    }

    async fn changes(&mut self, this: Resource<Connection>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.conn.as_ref().map_or(0, |c| c.changes()))
    }

    async fn drop(&mut self, rep: Resource<Connection>) -> wasmtime::Result<()> {
        let mut c = self.table.delete(rep)?;
        if let Some(conn) = c.conn.take() {
            c.db.release(conn);
        }
        Ok(())
    }
}
