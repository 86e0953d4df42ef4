//! A PostgreSQL cluster of one test's own, for the tests that must stop, restart or
//! reconfigure the database server itself (loss of the database, a restart under load,
//! TLS), which the shared test cluster of [`super::postgres`] must never undergo. The same
//! steps as `.ci/postgres.sh`: the server binaries from `OAUTH_MCP_PG_BINDIR`, else
//! `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`; `initdb` into a
//! temporary directory (trust authentication, C locale), run as the `postgres` user through
//! `runuser` when we are root (PostgreSQL refuses to run as root); `pg_ctl -w` on a free
//! port of 127.0.0.1, fsync and synchronous_commit on. Removed (stopped `-m immediate`)
//! when dropped.
//!
//! Without the binaries a test is skipped with a message, except under `CI=true`, where
//! that is a failure (the CI script installs PostgreSQL), like the other PostgreSQL tests.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// A private cluster; [`PrivateCluster::url`] is a superuser URL of its `postgres` database.
pub struct PrivateCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    as_postgres: bool,
}

/// The directory holding `initdb` and `pg_ctl`, if any.
fn bindir() -> Option<PathBuf> {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(dir) = std::env::var("OAUTH_MCP_PG_BINDIR") {
        return Some(PathBuf::from(dir)).filter(|d| usable(d));
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|d| usable(d));
    if from_pg_config.is_some() {
        return from_pg_config;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, d)| usable(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

/// A port nothing listens on now (the kernel's choice).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl PrivateCluster {
    /// A new cluster, initialised but not started (to add configuration or files first),
    /// or `None` (after saying so) without the PostgreSQL binaries outside CI.
    pub fn init(test: &str) -> Option<Self> {
        let Some(bin) = bindir() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "no PostgreSQL server binaries (initdb, pg_ctl), but CI=true: {test} must run \
                 in CI (install PostgreSQL or set OAUTH_MCP_PG_BINDIR)"
            );
            eprintln!(
                "skipped {test}: no PostgreSQL server binaries (install PostgreSQL or set \
                 OAUTH_MCP_PG_BINDIR; see docs/testing.md)"
            );
            return None;
        };
        let as_postgres = is_root();
        // Under /tmp, not $TMPDIR: the postgres user must reach it.
        let dir = tempfile::Builder::new()
            .prefix("oauth-mcp-private-pg.")
            .tempdir_in("/tmp")
            .expect("a temporary directory");
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        cluster.give_to_owner(cluster.dir.path());
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data().display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let socket_dir = cluster.dir.path().display().to_string();
        cluster.configure(&[
            "listen_addresses = '127.0.0.1'".to_owned(),
            format!("port = {}", cluster.port),
            format!("unix_socket_directories = '{socket_dir}'"),
            "max_connections = 100".to_owned(),
            "shared_buffers = 16MB".to_owned(),
            "fsync = on".to_owned(),
            "synchronous_commit = on".to_owned(),
        ]);
        Some(cluster)
    }

    /// A new cluster, started.
    pub fn start_new(test: &str) -> Option<Self> {
        let cluster = Self::init(test)?;
        cluster.start();
        Some(cluster)
    }

    /// The superuser URL of the `postgres` database, over TCP.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The cluster's directory (its data directory is `data` inside).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Appends `lines` to `postgresql.conf` (read at the next start).
    pub fn configure(&self, lines: &[String]) {
        use std::io::Write as _;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("postgresql.conf"))
            .expect("open postgresql.conf");
        writeln!(
            conf,
            "\n# oauth-mcp private test cluster\n{}",
            lines.join("\n")
        )
        .expect("write postgresql.conf");
    }

    /// Writes `contents` to `name` in the data directory, owned by the server's user with
    /// `mode` (PostgreSQL wants a private key at 0600).
    pub fn write_file(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.data().join(name);
        std::fs::write(&path, contents).expect("write a file of the cluster");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .expect("set its mode");
        self.give_to_owner(&path);
        path
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let log = self.dir.path().join("server.log").display().to_string();
        let data = self.data().display().to_string();
        self.run(
            "pg_ctl",
            &["start", "-D", &data, "-l", &log, "-w", "-t", "60"],
        );
    }

    /// Stops the server (`-m fast`: sessions are terminated, as in an orderly restart or
    /// a failover) and waits until it is down.
    pub fn stop(&self) {
        let data = self.data().display().to_string();
        self.run(
            "pg_ctl",
            &["stop", "-D", &data, "-m", "fast", "-w", "-t", "60"],
        );
    }

    /// Stops the server as if it crashed (`-m immediate`: no checkpoint; the next start
    /// recovers from the WAL).
    pub fn crash(&self) {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["stop", "-D", &data, "-m", "immediate", "-w"]);
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Waits until a connection to the server succeeds, at most `limit`.
    pub async fn wait_ready(&self, limit: Duration) {
        let started = std::time::Instant::now();
        loop {
            if let Ok((_client, conn)) =
                tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await
            {
                drop(conn);
                return;
            }
            assert!(
                started.elapsed() < limit,
                "the private cluster did not come up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a server binary as the cluster's owner, from inside its directory; panics with
    /// its output when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        self.runner().run(program, args);
    }

    fn runner(&self) -> Runner {
        Runner {
            bin: self.bin.clone(),
            dir: self.dir.path().to_owned(),
            as_postgres: self.as_postgres,
        }
    }

    /// [`crash`](Self::crash) on a blocking thread, so that requests go on meanwhile.
    pub async fn crash_in_background(&self) {
        let runner = self.runner();
        let data = self.data().display().to_string();
        tokio::task::spawn_blocking(move || {
            runner.run("pg_ctl", &["stop", "-D", &data, "-m", "immediate", "-w"]);
        })
        .await
        .expect("pg_ctl stop");
    }

    /// [`start`](Self::start) on a blocking thread, so that requests go on meanwhile.
    pub async fn start_in_background(&self) {
        let runner = self.runner();
        let log = self.dir.path().join("server.log").display().to_string();
        let data = self.data().display().to_string();
        tokio::task::spawn_blocking(move || {
            runner.run(
                "pg_ctl",
                &["start", "-D", &data, "-l", &log, "-w", "-t", "60"],
            );
        })
        .await
        .expect("pg_ctl start");
    }

    fn give_to_owner(&self, path: &Path) {
        if self.as_postgres {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(path)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown postgres {}", path.display());
        }
    }
}

/// What running a server binary needs, apart from the cluster (to run it on another thread).
struct Runner {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
}

impl Runner {
    /// Runs `program` as the cluster's owner, from inside its directory; panics with its
    /// output and the server's log when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data();
        if data.join("postmaster.pid").exists() {
            let path = self.bin.join("pg_ctl");
            let mut command = if self.as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&path);
                c
            } else {
                Command::new(&path)
            };
            let _ = command
                .args(["stop", "-D"])
                .arg(&data)
                .args(["-m", "immediate", "-w"])
                .current_dir(self.dir.path())
                .output();
        }
    }
}

/// Whether this process runs as root (then the cluster runs as `postgres`).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
