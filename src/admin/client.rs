//! The CLI's side of the admin socket.

use super::{AdminError, Request, Response};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Sends one request to the daemon whose data directory is `data_dir`.
pub async fn request(data_dir: &Path, req: &Request) -> Result<serde_json::Value, AdminError> {
    let path = super::socket_path(data_dir);
    let mut stream = UnixStream::connect(&path)
        .await
        .map_err(|e| AdminError::NotRunning {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
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
