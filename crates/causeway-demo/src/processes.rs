//! The live demo's child processes: a control plane (`causeway loop run`) and serving replicas
//! (`causeway serve`), started from the running `causeway` executable on loopback, each logging
//! to a file of its own. Owns starting them, knowing they are ready, and stopping them as a
//! supervisor does (SIGTERM, so they flush); never decides anything about the loop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use causeway_loop::{Error, Result};

/// How long a child may take to become ready or to stop.
const PATIENCE: Duration = Duration::from_secs(60);

/// A started child: its role, command line and log file. Killed on drop unless stopped.
pub struct Process {
    /// What it is (`control plane`, `replica a`).
    pub role: String,
    /// The command line, for people.
    pub command: String,
    /// Its standard error.
    pub log: PathBuf,
    child: Option<Child>,
}

fn io_error(path: &Path, cause: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), cause }
}

impl Process {
    /// Starts `executable` with `args`, its standard error into `log`; standard output is piped
    /// when `piped_stdout` (for a readiness line), else discarded.
    pub fn start(role: &str, executable: &Path, args: &[String], log: PathBuf, piped_stdout: bool) -> Result<Self> {
        let file = std::fs::File::create(&log).map_err(|cause| io_error(&log, cause))?;
        let child = Command::new(executable)
            .args(args)
            .stdin(Stdio::null())
            .stdout(if piped_stdout { Stdio::piped() } else { Stdio::null() })
            .stderr(file)
            .spawn()
            .map_err(|cause| io_error(executable, cause))?;
        let command = format!("causeway {}", args.join(" "));
        Ok(Self { role: role.to_string(), command, log, child: Some(child) })
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(12)..].join("\n")
    }

    /// Reads the first line of its standard output (a server's readiness line) and returns the
    /// address after `http://` in it.
    pub fn read_address(&mut self) -> Result<String> {
        let stdout = self.child.as_mut().and_then(|child| child.stdout.take());
        let mut line = String::new();
        if let Some(stdout) = stdout {
            BufReader::new(stdout).read_line(&mut line).map_err(|cause| io_error(&self.log, cause))?;
        }
        line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()).map(str::to_string).ok_or_else(
            || {
                Error::Precondition(format!(
                    "{} (`{}`) did not start; its log {} ends with:\n{}",
                    self.role,
                    self.command,
                    self.log.display(),
                    self.log_tail()
                ))
            },
        )
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|child| matches!(child.try_wait(), Ok(Some(_))))
    }

    /// Stops it as a supervisor does: SIGTERM, then waits for it to exit (killing it after a
    /// minute). Returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let signalled =
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().is_ok_and(|status| status.success());
        if !signalled {
            let _ = child.kill();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `ready` holds, checking every 50 ms, or fails after a minute (or as soon as
/// `process` exits) with its log.
pub fn wait_until(process: &mut Process, what: &str, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if ready()? {
            return Ok(());
        }
        if process.exited() || Instant::now() >= deadline {
            return Err(Error::Precondition(format!(
                "{} (`{}`) never {what}; its log {} ends with:\n{}",
                process.role,
                process.command,
                process.log.display(),
                process.log_tail()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
