//! The admin socket (`data_dir/admin.sock`, mode 0600): the only management interface of the
//! running daemon. `server` answers requests against the store; `client` is the CLI's side.
//! One JSON request per connection, one JSON response back.

mod backup;
pub mod client;
mod lists;
mod protocol;
mod server;

pub use protocol::{Request, Response};
pub use server::{AdminContext, bind, serve};

use std::path::{Path, PathBuf};

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the daemon is not running (cannot connect to {path}: {reason})")]
    NotRunning { path: String, reason: String },
    #[error(
        "permission denied on {path}: run this as the daemon's user (or root); the daemon may be running"
    )]
    PermissionDenied { path: String },
    #[error("admin socket I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("unreadable reply from the daemon: {0}")]
    Protocol(String),
    #[error("{0}")]
    Failed(String),
}
