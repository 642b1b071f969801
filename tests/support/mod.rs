//! Shared end-to-end harness: boots the real `stockops up` with the real components on a free
//! 127.0.0.1 port, against an embedded SQLite store or a real `redis-server` it starts, and stops both.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The workspace root (spin.toml lives there).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

/// The `stockops` binary cargo built for this test run.
pub fn stockops_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stockops"))
}

/// Fails with a clear message when the components have not been built (scripts/test.sh builds them).
pub fn require_components() {
    for c in ["health", "features", "train_batch", "predict", "alert", "backup"] {
        let p = root().join(format!("target/wasm32-wasip2/wasm/{c}.wasm"));
        assert!(p.exists(), "{} is missing: build the components first (scripts/test.sh does)", p.display());
    }
}

/// Which key-value backend a test runs against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kv {
    /// Embedded SQLite file.
    Embedded,
    /// A real redis-server started for the test.
    Redis,
}

/// A redis-server on a free loopback port, stopped on drop.
pub struct Redis {
    child: Child,
    /// Its port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts redis-server (installed by .ci/run from Debian) with no persistence.
    pub fn start() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server; .ci/run does)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port, _dir: dir }
    }

    /// Stops the server now (to test what happens without it).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A libSQL server (sqld) on a free loopback port with its data in a temporary directory, stopped on drop.
/// The binary is `$STOCKOPS_SQLD` or `sqld` on the PATH (scripts/install_sqld.sh fetches it; .ci/run does).
pub struct Sqld {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Sqld {
    /// Starts sqld without authentication (the token in the runtime config is then ignored).
    pub fn start() -> Sqld {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let bin = std::env::var("STOCKOPS_SQLD").unwrap_or_else(|_| "sqld".into());
        let child = Command::new(&bin)
            .arg("--http-listen-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--db-path")
            .arg(dir.path().join("data.sqld"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (run scripts/install_sqld.sh and set STOCKOPS_SQLD)"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sqld did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sqld { child, url: format!("http://127.0.0.1:{port}"), _dir: dir }
    }
}

impl Drop for Sqld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `stockops up`, stopped (SIGTERM, then kill) on drop.
pub struct Host {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The data directory (database and store files).
    pub dir: tempfile::TempDir,
    /// Everything the host wrote to stderr so far.
    pub log: Arc<Mutex<String>>,
    /// The Redis server, when the store is Redis.
    pub redis: Option<Redis>,
    /// The libSQL server, when the database is remote.
    pub sqld: Option<Sqld>,
    rc: PathBuf,
    manifest: PathBuf,
    opts: HostOptions,
}

/// Spawns `stockops up` with its output captured, and waits for the address it listens on.
fn spawn(mut cmd: Command, log: &Arc<Mutex<String>>) -> (Child, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("cannot start stockops");
    let stderr = child.stderr.take().unwrap();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log2.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("stockops listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(240)) {
        Ok(base) => (child, base),
        Err(_) => {
            let _ = child.kill();
            panic!("stockops up did not start; its log:\n{}", log.lock().unwrap());
        }
    }
}

/// What a test may change about how the host starts.
#[derive(Default, Clone)]
pub struct HostOptions {
    /// Extra `SPIN_VARIABLE_*` and other environment variables.
    pub env: Vec<(String, String)>,
    /// Extra command-line arguments to `up`.
    pub args: Vec<String>,
    /// A manifest other than the repository's spin.toml.
    pub manifest: Option<PathBuf>,
    /// The database on a libSQL server (sqld) started for the test, instead of an embedded file.
    pub sqld: bool,
    /// Run spin.toml's cron schedules. Off by default: a schedule firing mid-test (the nightly backup, the
    /// weekday retrain, the alert evaluation every minute) would change what the test checks.
    pub schedules: bool,
}

pub const TOKEN: &str = "test-token-0123456789";
pub const BACKUP_KEY: &str = "test-backup-passphrase";

impl Host {
    /// Starts the host with embedded stores or a fresh Redis.
    pub fn start(kv: Kv, opts: HostOptions) -> Host {
        require_components();
        let dir = tempfile::tempdir().unwrap();
        let redis = (kv == Kv::Redis).then(Redis::start);
        // Backups in their own store: another file, or another Redis database.
        let kv_section = |label: &str, db_index: u8| match &redis {
            None => format!("type = \"spin\"\npath = \"{}\"", dir.path().join(format!("{label}_kv.db")).display()),
            Some(r) => format!("type = \"redis\"\nurl = \"redis://127.0.0.1:{}/{db_index}\"", r.port),
        };
        let sqld = opts.sqld.then(Sqld::start);
        let db_section = match &sqld {
            None => format!("type = \"spin\"\npath = \"{}\"", dir.path().join("db.sqlite").display()),
            Some(s) => format!("type = \"libsql\"\nurl = \"{}\"\ntoken = \"unused-without-auth\"", s.url),
        };
        let rc = dir.path().join("runtime-config.toml");
        std::fs::write(
            &rc,
            format!(
                "[sqlite_database.default]\n{db_section}\n\n[key_value_store.default]\n{}\n\n[key_value_store.backups]\n{}\n",
                kv_section("default", 0),
                kv_section("backups", 1)
            ),
        )
        .unwrap();
        let manifest = opts.manifest.clone().unwrap_or_else(|| root().join("spin.toml"));
        let log = Arc::new(Mutex::new(String::new()));
        let (child, base) = spawn(Self::up_command(&manifest, &rc, &opts), &log);
        Host { child: Some(child), base, dir, log, redis, sqld, rc, manifest, opts }
    }

    /// `stockops up` on a free port over these stores, with the test's arguments and environment.
    fn up_command(manifest: &Path, rc: &Path, opts: &HostOptions) -> Command {
        let mut cmd = Command::new(stockops_bin());
        cmd.arg("up")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--manifest")
            .arg(manifest)
            .arg("--runtime-config")
            .arg(rc)
            .arg("--cache-dir")
            .arg(root().join("target/aot-cache"))
            .args(Self::extra_args(opts))
            .envs(Self::env(opts));
        cmd
    }

    /// The test's own arguments to `up`, and `--no-cron` unless it wants the schedules.
    fn extra_args(opts: &HostOptions) -> Vec<String> {
        let mut args = opts.args.clone();
        if !opts.schedules {
            args.push("--no-cron".into());
        }
        args
    }

    /// The environment the host runs with: the test secrets, then what the test adds.
    fn env(opts: &HostOptions) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("SPIN_VARIABLE_API_TOKEN", TOKEN),
            ("SPIN_VARIABLE_BACKUP_KEY", BACKUP_KEY),
            // Suites send far more than the default 100 requests a minute from one client; the rate-limit
            // test sets its own.
            ("SPIN_VARIABLE_RATE_LIMIT_PER_MINUTE", "100000"),
            ("STOCKOPS_LOG", "info"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(opts.env.iter().cloned());
        env
    }

    /// Kills the host at once (SIGKILL: no draining), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the host again on the same stores (after `kill` or `terminate`); `base` changes.
    pub fn restart(&mut self) {
        self.kill();
        let (child, base) = spawn(Self::up_command(&self.manifest, &self.rc, &self.opts), &self.log);
        (self.child, self.base) = (Some(child), base);
    }

    /// Runs a native `stockops` command on this host's stores (the runtime config and manifest it uses),
    /// with the same environment; returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str], extra_env: &[(&str, &str)]) -> (bool, String, String) {
        let out = Command::new(stockops_bin())
            .args(args)
            .arg("--runtime-config")
            .arg(&self.rc)
            .arg("--manifest")
            .arg(&self.manifest)
            .envs(Self::env(&self.opts))
            .envs(extra_env.iter().copied())
            .output()
            .expect("cannot run stockops");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// GET a path.
    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        client().get(format!("{}{path}", self.base)).send().unwrap()
    }

    /// The database file of this host.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("db.sqlite")
    }

    /// The embedded `default` key-value file of this host (Spin's `spin_key_value` table).
    pub fn kv_path(&self) -> PathBuf {
        self.dir.path().join("default_kv.db")
    }

    /// Stops the host with SIGTERM and returns its exit status and how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("host already stopped");
        let started = Instant::now();
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("host did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A response's status and JSON body; panics with the text when the body is not JSON.
pub fn json_of(resp: reqwest::blocking::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// An HTTP client with a sane timeout.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

/// Runs SQL statements against a SQLite file (the host's database) with libSQL, as a setup step.
pub fn sql(db: &Path, statements: &[&str]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = libsql::Builder::new_local(db).build().await.unwrap();
        let conn = db.connect().unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        for s in statements {
            conn.execute(s, ()).await.unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    });
}

/// The first column, as text, of each row a query with one text parameter returns (`?1`), in order.
pub fn texts(db: &Path, query: &str, param: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = libsql::Builder::new_local(db).build().await.unwrap();
        let conn = db.connect().unwrap();
        let mut rows = conn.query(query, [param]).await.unwrap_or_else(|e| panic!("{query}: {e}"));
        let mut out = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            out.push(row.get::<String>(0).unwrap());
        }
        out
    })
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
