//! Several real server processes on one PostgreSQL database (issue 14): [`Cluster::start`]
//! makes a fresh test database ([`test_database`]) and starts `n` instances of the binary on it,
//! each with a data directory of its own and all with one shared `--key-file`, as a deployment
//! behind a load balancer would run them. Each instance is wrapped in a [`TestApp`]
//! ([`attach`]), so every OAuth and MCP helper of the suite talks to it. An instance can be
//! killed (SIGKILL) and restarted on its port; every process is killed when the cluster is
//! dropped, so a failing test leaves no server behind.
//!
//! The instances run on the system clock, not a `ManualClock`: tests that need time to pass
//! cannot advance it here.

use std::{
    path::{Path, PathBuf},
    process::Child,
    time::{Duration, Instant},
};

use rand::RngExt as _;
use tempfile::TempDir;

use super::{attach, test_database, TestApp, TestDatabase};
use crate::shutdown::{log_problems, start_binary_with, wait_exit, Log};

/// One server process of a [`Cluster`].
pub struct Instance {
    /// The OAuth/MCP helpers, pointed at this instance (`http://127.0.0.1:PORT`).
    pub app: TestApp,
    /// Its JSON log lines so far (standard error prefixed with `stderr: `).
    pub log: Log,
    child: Option<Child>,
    data_dir: TempDir,
}

impl Instance {
    /// The instance's port.
    pub fn port(&self) -> u16 {
        self.app.port
    }

    /// Whether the process is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Log lines that make a run unclean: error-level events and anything on standard error.
    pub fn problems(&self) -> Vec<String> {
        log_problems(&self.log)
    }
}

/// `n` instances of the binary on one fresh database.
pub struct Cluster {
    /// The database every instance uses; dropped after the instances are killed.
    pub db: TestDatabase,
    /// The instances, in start order.
    pub instances: Vec<Instance>,
    key_dir: TempDir,
    args: Vec<String>,
}

impl Cluster {
    /// Starts `n` instances at once (they race through the migrations, as a rolling start
    /// does) on a fresh database, each with `--database-url`, the shared `--key-file` and
    /// `extra_args`. `None` when no test cluster is configured (outside CI; see
    /// [`test_database`]). Fails the test if an instance does not start.
    pub async fn start(test: &str, n: usize, extra_args: &[&str]) -> Option<Cluster> {
        let db = test_database(test).await?;
        let key_dir = tempfile::tempdir().expect("a directory for the shared server key");
        let key_file = key_dir.path().join("server.key");
        // Generated once by the first instance that starts would race: write it here.
        std::fs::write(&key_file, rand::random::<[u8; 32]>()).expect("write the server key");
        set_private(&key_file);
        let mut args: Vec<String> = vec![
            "--database-url".into(),
            db.url.clone(),
            "--key-file".into(),
            key_file.display().to_string(),
        ];
        args.extend(extra_args.iter().map(|a| (*a).to_owned()));
        let starts: Vec<_> = (0..n)
            .map(|_| {
                let args = args.clone();
                std::thread::spawn(move || {
                    let data_dir = tempfile::tempdir().expect("a data directory");
                    let (child, port, log) = start_on_free_port(data_dir.path(), &args);
                    (child, port, log, data_dir)
                })
            })
            .collect();
        let instances = starts
            .into_iter()
            .map(|start| {
                let (child, port, log, data_dir) = start.join().expect("an instance started");
                Instance {
                    app: attach(&format!("http://127.0.0.1:{port}"), port),
                    log,
                    child: Some(child),
                    data_dir,
                }
            })
            .collect();
        Some(Cluster {
            db,
            instances,
            key_dir,
            args,
        })
    }

    /// The helpers of instance `i`.
    pub fn app(&self, i: usize) -> &TestApp {
        &self.instances[i].app
    }

    /// The shared server key file.
    pub fn key_file(&self) -> PathBuf {
        self.key_dir.path().join("server.key")
    }

    /// SIGKILLs instance `i` and waits until it is gone.
    pub fn kill(&mut self, i: usize) {
        let mut child = self.instances[i]
            .child
            .take()
            .expect("the instance is running");
        child.kill().expect("SIGKILL the instance");
        let status = wait_exit(&mut child, Duration::from_secs(10));
        assert!(!status.success(), "killed, yet exited with {status}");
    }

    /// Starts instance `i` again (after [`Cluster::kill`]) on its port and data directory,
    /// with the same arguments. A port just released may take a moment to be free again, so
    /// a refusal to listen is retried for at most 10 s.
    pub fn restart(&mut self, i: usize) {
        assert!(
            self.instances[i].child.is_none(),
            "kill the instance before restarting it"
        );
        let port = self.instances[i].port();
        let deadline = Instant::now() + Duration::from_secs(10);
        let (child, log) = loop {
            match start_binary_with(
                self.instances[i].data_dir.path(),
                "info",
                &format!("127.0.0.1:{port}"),
                &as_strs(&self.args),
            ) {
                Ok((child, reported, log)) => {
                    assert_eq!(reported, port, "the instance listens where it was told");
                    break (child, log);
                }
                Err(out) if out.contains("cannot listen") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(out) => panic!("instance {i} did not restart: {out}"),
            }
        };
        self.instances[i].child = Some(child);
        self.instances[i].log = log;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for instance in &mut self.instances {
            if let Some(mut child) = instance.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Starts the binary on a random port below the kernel's ephemeral range (32768 and up on
/// Linux), so that no outgoing connection holds it when the instance is restarted on it.
fn start_on_free_port(data_dir: &Path, args: &[String]) -> (Child, u16, Log) {
    let mut rng = rand::rng();
    let mut last = String::new();
    for _ in 0..20 {
        let port = rng.random_range(20_000..32_000);
        match start_binary_with(
            data_dir,
            "info",
            &format!("127.0.0.1:{port}"),
            &as_strs(args),
        ) {
            Ok((child, reported, log)) => {
                assert_eq!(reported, port);
                return (child, port, log);
            }
            Err(out) if out.contains("cannot listen") => last = out,
            Err(out) => panic!("an instance did not start: {out}"),
        }
    }
    panic!("no free port found: {last}");
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[cfg(unix)]
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("make the server key private");
}

#[cfg(not(unix))]
fn set_private(_: &Path) {}
