//! Helpers shared by the integration tests: the child-process binary and
//! the Python `honker` package.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The environment variable through which a child learns its parent's pid,
/// so that it can tell whether the parent died before it asked to die with
/// it.
pub const PARENT_PID_ENV: &str = "HONKER_CHILD_PARENT_PID";

/// A command running the `honker-child` helper binary.
pub fn child(cmd: &str, db: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_honker-child"));
    c.arg(cmd)
        .arg(db)
        .env(PARENT_PID_ENV, std::process::id().to_string());
    c
}

/// A running child process that is killed (SIGKILL) and reaped when the
/// guard is dropped, also while a failing test unwinds: a test never
/// leaves a process behind, nor a suite waiting on one.
pub struct ChildGuard(std::process::Child);

impl ChildGuard {
    /// Spawn `cmd` under a guard.
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        ChildGuard(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}")),
        )
    }

    /// Wait up to `limit` for the child to exit by itself; panics (which
    /// kills it) when it does not.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait on a child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child {} did not exit within {limit:?}",
                self.0.id()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait up to `limit` for the child to exit, collecting its piped
    /// stdout and stderr; panics (which kills it) when it does not exit.
    pub fn output(mut self, limit: Duration) -> Output {
        let (stdout, stderr) = self.drain_pipes();
        let status = self.wait_for_exit(limit);
        Output {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    }

    /// [`output`](Self::output) for async tests: waits without blocking a
    /// runtime thread.
    pub async fn output_async(mut self, limit: Duration) -> Output {
        let (stdout, stderr) = self.drain_pipes();
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.0.try_wait().expect("try_wait on a child") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "child {} did not exit within {limit:?}",
                self.0.id()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        Output {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    }

    /// Read the piped stdout and stderr to their ends on their own threads
    /// (so a chatty child never blocks on a full pipe).
    fn drain_pipes(
        &mut self,
    ) -> (
        std::thread::JoinHandle<Vec<u8>>,
        std::thread::JoinHandle<Vec<u8>>,
    ) {
        fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        }
        (drain(self.0.stdout.take()), drain(self.0.stderr.take()))
    }

    /// The lines of the child's piped stdout, read on a thread of their
    /// own, so a test can wait for the next one with a limit.
    pub fn stdout_lines(&mut self) -> Lines {
        let out = self.0.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    /// Send the child SIGINT (a ctrl-c).
    pub fn interrupt(&self) {
        let pid = libc::pid_t::try_from(self.0.id()).expect("a pid");
        // SAFETY: kill(2) with a valid signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "SIGINT");
    }

    /// SIGKILL the child now and reap it.
    pub fn kill(&mut self) {
        self.0.kill().expect("kill a child");
        self.0.wait().expect("reap a killed child");
    }
}

/// A child's stdout, line by line (see [`ChildGuard::stdout_lines`]).
pub struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    /// The next line; `None` at the end of the output. Panics when no line
    /// comes within `limit`.
    pub fn next_within(&self, limit: Duration) -> Option<String> {
        match self.0.recv_timeout(limit) {
            Ok(line) => Some(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("no line from the child within {limit:?}")
            }
        }
    }

    /// Whether the child stays silent (no line, output still open) for
    /// `d`.
    pub fn silent_for(&self, d: Duration) -> bool {
        matches!(
            self.0.recv_timeout(d),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        )
    }
}

impl std::ops::Deref for ChildGuard {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Run `cmd` to completion (stdout and stderr captured), killing it and
/// failing when it takes longer than `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ChildGuard::spawn(cmd).output(limit)
}

/// What a test that needs Python says when it is ignored.
pub const NEEDS_PYTHON: &str = "needs the honker Python package: set HONKER_PYTHON to a python \
                                that can `import honker` (.ci/run does)";

/// The Python interpreter that has the `honker` package: `$HONKER_PYTHON`
/// (as the test runs, else as it was built), else the virtualenv `.ci/run`
/// makes at `target/interop-venv`.
///
/// The tests that call this are `ignored` unless built with
/// `cfg(honker_python)` (see `build.rs`) or run with `--include-ignored`;
/// once they run, a missing or broken interpreter fails them.
pub fn honker_python() -> PathBuf {
    let candidate = std::env::var_os("HONKER_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            option_env!("HONKER_PYTHON")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/interop-venv/bin/python")
        });
    let probe = Command::new(&candidate)
        .args(["-c", "import honker"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    match probe.map(|c| ChildGuard(c).output(Duration::from_secs(60))) {
        Ok(o) if o.status.success() => candidate,
        Ok(o) => panic!(
            "{} cannot `import honker` ({}): {}\n{NEEDS_PYTHON}",
            candidate.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run the Python interpreter {}: {e}\n{NEEDS_PYTHON}",
            candidate.display()
        ),
    }
}

/// Run a Python script with the honker interpreter; returns stdout, panics
/// with stderr on failure.
pub fn run_python(python: &std::path::Path, script: &str, args: &[&str]) -> String {
    let out = run(
        Command::new(python).arg("-c").arg(script).args(args),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Poll `f` until it is true or `limit` passes; the limit is a safety net
/// for a hung test, not a speed assertion.
pub async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
