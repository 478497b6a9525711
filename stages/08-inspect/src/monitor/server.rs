//! The monitor on a Unix socket, for scripts: `--monitor unix:PATH`.
//!
//! Each connection is a session of its own: the prompt `(minivirt) `, one command per line,
//! its answer, the prompt again. A client that goes away mid-command costs its session only;
//! the guest runs on throughout.

use super::session::{MachineView, Session};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The prompt before every command, as QEMU's `(qemu) `.
pub const PROMPT: &str = "(minivirt) ";

/// Why the monitor could not listen.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Only `unix:PATH` is offered.
    #[error("unknown monitor address {0:?}: use unix:PATH")]
    Address(String),
    /// The socket could not be made.
    #[error("cannot listen on {}: {source}", path.display())]
    Listen {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The path in a `unix:PATH` monitor address.
pub fn parse_address(address: &str) -> Result<PathBuf, MonitorError> {
    match address.strip_prefix("unix:") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => Err(MonitorError::Address(address.to_string())),
    }
}

/// The listening socket; dropping it removes the socket file.
pub struct MonitorServer {
    path: PathBuf,
}

impl MonitorServer {
    /// Listens on `path` (replacing a stale socket file there) and serves each connection on
    /// its own thread.
    pub fn start(path: &Path, view: Arc<MachineView>) -> Result<MonitorServer, MonitorError> {
        let listen_error = |source| MonitorError::Listen { path: path.to_path_buf(), source };
        if path.exists() {
            std::fs::remove_file(path).map_err(listen_error)?;
        }
        let listener = UnixListener::bind(path).map_err(listen_error)?;
        stage03::threads::spawn("monitor", move || {
            for stream in listener.incoming().flatten() {
                let view = Arc::clone(&view);
                // A session that cannot get a thread is dropped; the others go on.
                let _ = stage03::threads::spawn("monitor session", move || {
                    // A client that hangs up mid-answer ends only its own session.
                    let _ = serve(stream, view);
                });
            }
        })
        .map_err(listen_error)?;
        Ok(MonitorServer { path: path.to_path_buf() })
    }
}

impl Drop for MonitorServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One connection: prompt, command, answer, until `quit` or the client hangs up.
fn serve(stream: UnixStream, view: Arc<MachineView>) -> io::Result<()> {
    let mut session = Session::new(view);
    let mut writer = stream.try_clone()?;
    writer.write_all(PROMPT.as_bytes())?;
    for line in BufReader::new(stream).lines() {
        // A line that is not UTF-8 is bad input like any other.
        let line = line.unwrap_or_else(|_| "\u{fffd}".into());
        let answer = session.execute(&line);
        writer.write_all(answer.text.as_bytes())?;
        if answer.quit {
            return Ok(());
        }
        writer.write_all(PROMPT.as_bytes())?;
    }
    Ok(())
}
