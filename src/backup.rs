//! `herald backup` and `herald restore` (DESIGN §2): the layout of a backup directory — a
//! consistent copy of the database, the files the daemon keeps beside it in `data_dir`
//! (generated TLS pair, development password, keys), and a manifest written last — and the
//! rules for where a backup may be written and restored.
//!
//! ```text
//! DIR/db/             a fresh sled database (store::Store::snapshot)
//! DIR/files/…         every other file of data_dir except the database and the admin socket
//! DIR/manifest.json   Herald version, schema version, time, records per tree, files
//! ```
//! A backup without its manifest is unfinished and is never restored.

use crate::store::{SCHEMA_VERSION, Store, StoreError, TreeCounts};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";
const DB: &str = "db";
const FILES: &str = "files";
/// Present while a backup is being written; keeps two backups out of one directory.
const IN_PROGRESS: &str = ".in-progress";

/// What a backup holds; written last, so its presence means the backup is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub herald_version: String,
    pub schema_version: u32,
    /// RFC 3339, when the snapshot was taken.
    pub created: String,
    /// Records per database tree.
    pub trees: TreeCounts,
    /// Files from `data_dir`, relative, `/`-separated.
    pub files: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{what} {path} is not empty: it must be empty or absent{hint}")]
    NotEmpty {
        what: &'static str,
        path: String,
        hint: &'static str,
    },
    #[error("the backup directory must be an absolute path, not {0}")]
    Relative(String),
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path} is not a Herald backup: it has no {MANIFEST} (an unfinished backup has none)")]
    NoManifest { path: String },
    #[error("unreadable manifest {path}: {reason}")]
    BadManifest { path: String, reason: String },
    #[error("the backup has database schema {found}; this Herald supports up to {supported}")]
    Schema { found: u32, supported: u32 },
    #[error(
        "the restored database does not match the manifest: tree {tree} has {found} records, the manifest says {expected}"
    )]
    Mismatch {
        tree: String,
        expected: u64,
        found: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Refuses a directory that exists with something in it (or a path that is not a directory).
fn ensure_empty(path: &Path, what: &'static str, hint: &'static str) -> Result<(), BackupError> {
    let not_empty = || BackupError::NotEmpty {
        what,
        path: path.display().to_string(),
        hint,
    };
    match fs::read_dir(path).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_empty()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(not_empty()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Creates `dir` (and parents) readable by its owner only: backups hold secrets.
fn make_private_dir(dir: &Path) -> Result<(), BackupError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

/// Writes a consistent backup of the running daemon's store and `data_dir` into `dest`, which
/// must be absolute and empty or absent. Blocking: run it off the async threads.
pub fn create(store: &Store, data_dir: &Path, dest: &Path) -> Result<Manifest, BackupError> {
    if !dest.is_absolute() {
        return Err(BackupError::Relative(dest.display().to_string()));
    }
    ensure_empty(dest, "backup directory", "")?;
    make_private_dir(dest)?;
    let marker = dest.join(IN_PROGRESS);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .map_err(|_| BackupError::NotEmpty {
            what: "backup directory",
            path: dest.display().to_string(),
            hint: " (another backup is being written there)",
        })?;
    let result = fill(store, data_dir, dest);
    match &result {
        Ok(_) => fs::remove_file(&marker).map_err(io(&marker))?,
        // The directory was empty: leave it so, rather than a backup that looks complete.
        Err(_) => clear(dest),
    }
    sync_dir(dest)?;
    result
}

fn fill(store: &Store, data_dir: &Path, dest: &Path) -> Result<Manifest, BackupError> {
    // Canonical paths, so a backup directory inside data_dir is recognised and left out.
    let data_dir = fs::canonicalize(data_dir).map_err(io(data_dir))?;
    let dest = fs::canonicalize(dest).map_err(io(dest))?;
    let created = crate::timefmt::rfc3339(crate::store::now_secs());
    let trees = store.snapshot(&dest.join(DB))?;
    let mut files = Vec::new();
    copy_tree(&data_dir, &dest.join(FILES), "", &dest, &mut files)?;
    let manifest = Manifest {
        herald_version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version: SCHEMA_VERSION,
        created,
        trees,
        files,
    };
    write_manifest(&dest, &manifest)?;
    Ok(manifest)
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let path = dir.join(MANIFEST);
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let mut text = serde_json::to_vec_pretty(manifest).map_err(|e| BackupError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    text.push(b'\n');
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&text).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Whether a top-level entry of `data_dir` stays out of a backup: the database (copied
/// separately), its rewrite leftovers, and — when backups are kept inside `data_dir` — the
/// directory being written and earlier backups.
fn skipped(path: &Path, name: &str, dest: &Path) -> bool {
    name == DB || name.starts_with("db.") || dest.starts_with(path) || path.join(MANIFEST).exists()
}

/// Copies the regular files under `from` into `to`, recording their names (prefixed by
/// `rel`); sockets, symlinks and the entries `skipped` names stay behind.
fn copy_tree(
    from: &Path,
    to: &Path,
    rel: &str,
    dest: &Path,
    files: &mut Vec<String>,
) -> Result<(), BackupError> {
    for entry in fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if skipped(&path, &name, dest) {
            continue;
        }
        let kind = entry.file_type().map_err(io(&path))?;
        let target = to.join(&name);
        let rel_name = format!("{rel}{name}");
        if kind.is_dir() {
            make_private_dir(&target)?;
            copy_tree(&path, &target, &format!("{rel_name}/"), dest, files)?;
        } else if kind.is_file() {
            make_private_dir(to)?;
            copy_file(&path, &target)?;
            files.push(rel_name);
        }
    }
    Ok(())
}

/// Copies one file with its permission bits and makes it durable.
fn copy_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    fs::copy(from, to).map_err(io(from))?;
    fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(io(to))
}

/// Reads and checks the manifest of the backup in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NoManifest {
                path: dir.display().to_string(),
            });
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| BackupError::BadManifest {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    if manifest.schema_version > SCHEMA_VERSION {
        return Err(BackupError::Schema {
            found: manifest.schema_version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(manifest)
}

/// Restores the backup in `src` into `data_dir`, which must be empty or absent (so no daemon
/// runs on it). Copies the database and files, then opens the copy and checks its records
/// per tree against the manifest; on any failure `data_dir` is left empty again.
pub fn restore(src: &Path, data_dir: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(src)?;
    let db = src.join(DB);
    if !db.is_dir() {
        return Err(BackupError::BadManifest {
            path: db.display().to_string(),
            reason: "the database directory is missing".into(),
        });
    }
    ensure_empty(
        data_dir,
        "data_dir",
        " (stop the daemon and move the old data away first)",
    )?;
    make_private_dir(data_dir)?;
    let result = place(src, data_dir, &manifest);
    if result.is_err() {
        clear(data_dir);
    }
    result.map(|()| manifest)
}

fn place(src: &Path, data_dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    copy_all(&src.join(DB), &data_dir.join(DB))?;
    for name in &manifest.files {
        let (from, to) = (src.join(FILES).join(name), data_dir.join(name));
        if let Some(parent) = to.parent() {
            make_private_dir(parent)?;
        }
        copy_file(&from, &to)?;
    }
    let store = Store::open(&data_dir.join(DB))?;
    let found = store.counts()?;
    for (tree, &n) in &found {
        let expected = manifest.trees.get(tree).copied().unwrap_or(0);
        if n != expected {
            return Err(BackupError::Mismatch {
                tree: tree.clone(),
                expected,
                found: n,
            });
        }
    }
    if let Some((tree, &expected)) = manifest.trees.iter().find(|(t, _)| !found.contains_key(*t)) {
        return Err(BackupError::Mismatch {
            tree: tree.clone(),
            expected,
            found: 0,
        });
    }
    drop(store);
    sync_dir(data_dir)
}

/// Copies a directory tree as it is (the sled database files).
fn copy_all(from: &Path, to: &Path) -> Result<(), BackupError> {
    make_private_dir(to)?;
    for entry in fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let (path, target): (PathBuf, PathBuf) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io(&path))?.is_dir() {
            copy_all(&path, &target)?;
        } else {
            copy_file(&path, &target)?;
        }
    }
    Ok(())
}

/// Empties `dir` after a failed restore (it was empty before).
fn clear(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let _ = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
    }
}
