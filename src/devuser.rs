//! The development user: when no `[[users]]` are configured and every listener is on loopback,
//! a `dev` user with a random password is created so a first run can submit mail at once.
//! The password is kept in `data_dir/dev-password` (0600) and printed when it is created.

use crate::config::{Config, User};
use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use rand::Rng;
use rand::distributions::Alphanumeric;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

pub struct DevUser {
    pub user: User,
    pub password_file: PathBuf,
    /// The password, when it was generated just now (to print once).
    pub new_password: Option<String>,
}

fn loopback_only(config: &Config) -> bool {
    let l = &config.listen;
    [&l.submission, &l.submissions, &l.inbound, &l.http]
        .into_iter()
        .flatten()
        .all(|a| a.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback()))
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn ensure(config: &Config) -> std::io::Result<Option<DevUser>> {
    if !config.users.is_empty() || !loopback_only(config) {
        return Ok(None);
    }
    let password_file = config.data_dir.join("dev-password");
    let (password, new_password) = match std::fs::read_to_string(&password_file) {
        Ok(p) if !p.trim().is_empty() => (p.trim().to_string(), None),
        _ => {
            let p: String = rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(20)
                .map(char::from)
                .collect();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&password_file)?;
            writeln!(f, "{p}")?;
            f.sync_all()?;
            (p.clone(), Some(p))
        }
    };
    let password_hash = hash_password(&password).map_err(std::io::Error::other)?;
    let user = User {
        name: "dev".into(),
        password_hash,
        senders: vec!["*".into()],
        may_send_service: true,
    };
    Ok(Some(DevUser {
        user,
        password_file,
        new_password,
    }))
}
