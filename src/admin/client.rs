//! The CLI's side of the admin socket.

use super::{AdminError, Request, Response};
use std::io::ErrorKind;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Sends one request to the daemon whose data directory is `data_dir`.
pub async fn request(data_dir: &Path, req: &Request) -> Result<serde_json::Value, AdminError> {
    let path = super::socket_path(data_dir);
    let mut stream = UnixStream::connect(&path)
        .await
        .map_err(|e| connect_error(&path, &e))?;
    let mut line = serde_json::to_vec(req).map_err(|e| AdminError::Protocol(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let resp: Response =
        serde_json::from_slice(&buf).map_err(|e| AdminError::Protocol(e.to_string()))?;
    if resp.ok {
        Ok(resp.data)
    } else {
        Err(AdminError::Failed(
            resp.error.unwrap_or_else(|| "request failed".into()),
        ))
    }
}

/// Why the socket could not be reached: refused for permissions (EACCES, EPERM) is not
/// "not running" (the daemon may well be running), anything else (ENOENT, ECONNREFUSED) is.
fn connect_error(path: &Path, e: &std::io::Error) -> AdminError {
    let path = path.display().to_string();
    match e.kind() {
        ErrorKind::PermissionDenied => AdminError::PermissionDenied { path },
        _ => AdminError::NotRunning {
            path,
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_is_not_absence() {
        let p = Path::new("/var/lib/herald/admin.sock");
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        let eperm = std::io::Error::from_raw_os_error(libc::EPERM);
        for e in [denied, eperm] {
            let msg = connect_error(p, &e).to_string();
            assert!(
                msg.contains("permission denied on /var/lib/herald/admin.sock"),
                "{msg}"
            );
            assert!(!msg.contains("not running"), "{msg}");
        }
        for errno in [libc::ENOENT, libc::ECONNREFUSED] {
            let e = std::io::Error::from_raw_os_error(errno);
            assert!(connect_error(p, &e).to_string().contains("not running"));
        }
    }
}
