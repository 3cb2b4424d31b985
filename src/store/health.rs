//! Storage health: the free-space floor (`limits.min_free_space`) and failed writes.
//!
//! Two things make the store refuse new mail: the file system holding the database has less
//! free space than the floor (probed with `statvfs` by the daemon's space monitor about every
//! second), or a write failed with an I/O error (ENOSPC, EIO) since the store last recovered.
//! Either state is reported on `/healthz`, `/metrics` and in the log; new mail gets `452 4.3.1`
//! while it lasts. Recovery is the monitor's: once the free space is back above the floor after
//! a failed write, it probes the database with a small durable write and, if sled has poisoned
//! itself (sled 0.34 keeps the first I/O error and fails every later write with it), reopens
//! the database in place (`recover.rs`, `Store::check_storage`).

use std::path::Path;
use std::sync::Mutex;

/// What the store's storage looks like now (also in `herald stats --json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Storage {
    /// Free bytes for an unprivileged writer on the database's file system, if ever probed.
    pub free: Option<u64>,
    /// The configured floor.
    pub floor: u64,
    /// The last write error since the store last recovered.
    pub failed: Option<String>,
    /// How many times the database has been reopened in place.
    pub reopened: u64,
}

impl Storage {
    /// Below the floor: new mail is refused.
    pub fn low(&self) -> bool {
        self.free.is_some_and(|f| f < self.floor)
    }

    /// New mail may be accepted.
    pub fn ok(&self) -> bool {
        !self.low() && self.failed.is_none()
    }

    /// Why new mail is refused, for `/healthz`, admin errors and the log; `None` when ok.
    pub fn reason(&self) -> Option<String> {
        if self.low() {
            return Some(format!(
                "insufficient storage: {} free, floor {}",
                human(self.free.unwrap_or(0)),
                human(self.floor)
            ));
        }
        self.failed
            .as_ref()
            .map(|e| format!("insufficient storage: a write failed ({e}); waiting to recover"))
    }
}

impl Storage {
    /// One line for `herald stats`: `ok, 48 GiB free`, or the refusal's reason in capitals.
    pub fn summary(&self) -> String {
        match self.reason() {
            None => format!("ok, {} free", human(self.free.unwrap_or(0))),
            Some(reason) => format!("REFUSING NEW MAIL: {reason}"),
        }
    }
}

/// The shared state; one per store, kept across reopens.
#[derive(Debug)]
pub(super) struct Health {
    state: Mutex<Storage>,
}

/// A change of [`Storage::ok`], for the one log line per transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// New mail is refused from now on, and why.
    Refusing(String),
    /// Storage is fine again.
    Accepting,
}

impl Health {
    pub fn new(floor: u64) -> Health {
        Health {
            state: Mutex::new(Storage {
                free: None,
                floor,
                failed: None,
                reopened: 0,
            }),
        }
    }

    pub fn get(&self) -> Storage {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Storage> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` and says whether it changed whether mail is accepted.
    pub fn update(&self, change: impl FnOnce(&mut Storage)) -> Option<Transition> {
        let mut st = self.lock();
        let before = st.ok();
        change(&mut st);
        match (before, st.ok()) {
            (true, false) => Some(Transition::Refusing(st.reason().unwrap_or_default())),
            (false, true) => Some(Transition::Accepting),
            _ => None,
        }
    }
}

/// Free bytes on the file system holding `path` (as an unprivileged writer sees them).
pub(super) fn free_space(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` a buffer of the right type, both live for
    // the call; statvfs writes only into `st`.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// `3.2 MiB`, `1 GiB`: for people.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_and_failure_decide_and_each_change_is_one_transition() {
        let h = Health::new(10 << 20);
        assert!(h.get().ok(), "never probed: ok");
        assert_eq!(h.update(|s| s.free = Some(20 << 20)), None);
        let t = h.update(|s| s.free = Some((3 << 20) + (1 << 19)));
        assert_eq!(
            t,
            Some(Transition::Refusing(
                "insufficient storage: 3.5 MiB free, floor 10 MiB".into()
            ))
        );
        assert_eq!(h.update(|s| s.free = Some(1 << 20)), None, "still low");
        assert_eq!(h.update(|s| s.failed = Some("ENOSPC".into())), None);
        assert_eq!(h.update(|s| s.free = Some(20 << 20)), None, "failed still");
        assert!(h.get().reason().is_some_and(|r| r.contains("ENOSPC")));
        assert_eq!(h.update(|s| s.failed = None), Some(Transition::Accepting));
        assert!(h.get().ok());
        assert_eq!(h.get().reason(), None);
        // Exactly at the floor is not below it.
        assert_eq!(h.update(|s| s.free = Some(10 << 20)), None);
        assert!(matches!(
            h.update(|s| s.failed = Some("EIO".into())),
            Some(Transition::Refusing(r)) if r.contains("EIO")
        ));
    }

    #[test]
    fn free_space_of_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).unwrap() > 0);
        assert!(free_space(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1 << 30), "1 GiB");
        assert_eq!(human(3_355_443), "3.2 MiB");
        assert_eq!(human(1023), "1023 B");
    }
}
