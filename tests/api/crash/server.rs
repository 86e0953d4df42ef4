//! The binary under test, started on a data directory and a fixed port, SIGKILLed, and
//! restarted on the same port; killed when dropped so a failing test leaves no server behind.

use super::*;

/// The binary, killed (SIGKILL) when dropped so a failing test leaves no server behind.
pub(super) struct Server {
    pub(super) child: Child,
    pub(super) port: u16,
    pub(super) log: Log,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary on `dir` listening on `port`. The port was free when the first
    /// server took it; after a kill it may take a moment to be free again, so a refusal to
    /// listen is retried (for at most 10 s). Any other failure to start fails the test.
    pub(super) fn start(dir: &std::path::Path, port: u16) -> Result<Server, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match start_binary_with(dir, "info", &format!("127.0.0.1:{port}"), SERVER_ARGS) {
                Ok((child, reported, log)) => {
                    assert_eq!(reported, port, "the server listens where it was told");
                    return Ok(Server { child, port, log });
                }
                Err(output) if output.contains("cannot listen") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(output) => return Err(output),
            }
        }
    }

    /// The first start: a random port below the kernel's ephemeral range (32768 and up on
    /// Linux), so no outgoing connection can hold it when the server is restarted on it.
    pub(super) fn start_fresh(dir: &std::path::Path, rng: &mut StdRng) -> Server {
        let mut last = String::new();
        for _ in 0..20 {
            let port = rng.random_range(20_000..32_000);
            match start_binary_with(dir, "info", &format!("127.0.0.1:{port}"), SERVER_ARGS) {
                Ok((child, reported, log)) => {
                    assert_eq!(reported, port);
                    return Server { child, port, log };
                }
                Err(output) if output.contains("cannot listen") => last = output,
                Err(output) => panic!("the server did not start: {output}"),
            }
        }
        panic!("no free port found: {last}");
    }

    /// SIGKILL (`Child::kill` sends it directly), then waits for the process to be gone.
    pub(super) fn kill(mut self) {
        self.child.kill().expect("SIGKILL the server");
        let status = wait_exit(&mut self.child, Duration::from_secs(10));
        assert!(!status.success(), "killed, yet exited with {status}");
    }

    /// What makes a start unclean: error-level events and anything on standard error.
    pub(super) fn problems(&self) -> Vec<String> {
        log_problems(&self.log)
    }
}
