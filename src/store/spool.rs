//! The body spool: message bodies live in append-only segment files (`spool/NNNNNNNN.seg`
//! inside the database directory), and sled holds only a 20-byte reference to each (tree
//! `spooled`: id → segment, offset, length, CRC-32).
//!
//! Why not in sled: a 64 KiB body written into a sled tree is copied into the tree's leaf, the
//! leaf is rewritten as it fills, and leaves of large values become blob files — several
//! writes and page consolidations per byte received. Here a body is written once, appended.
//!
//! Durability: a body is written before the reference to it is inserted; every group commit
//! fdatasyncs the segments written since the last one *before* sled's flush, so a reference
//! that is on disk never points at a body that is not. A segment file is deleted only once no
//! reference points into it and the removals are on disk (the group commit after they were
//! made), so a crash can bring a reference back but never orphan it. At start-up segments that
//! no reference points into are deleted, and writing continues in a fresh segment.
//!
//! Space: a closed segment whose live bodies fill less than a quarter of it is *sparse*;
//! `Store::compact_spool` copies its bodies to the end of the spool, after which it is spent.
//! So the spool holds at most about four times the bytes of the queued bodies, plus the
//! segment being written, even when a few long-deferred messages are scattered through it.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A segment is closed once it holds this much; a fresh one is started.
const SEGMENT_BYTES: u64 = 16 << 20;

pub(super) const DIR: &str = "spool";

/// Where a body is: segment, offset, length, and its CRC-32 (checked on every read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BodyRef {
    pub segment: u32,
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
}

impl BodyRef {
    pub fn encode(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[..4].copy_from_slice(&self.segment.to_be_bytes());
        out[4..12].copy_from_slice(&self.offset.to_be_bytes());
        out[12..16].copy_from_slice(&self.len.to_be_bytes());
        out[16..].copy_from_slice(&self.crc.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<BodyRef> {
        let b: &[u8; 20] = bytes.try_into().ok()?;
        let u32_at = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&b[4..12]);
        Some(BodyRef {
            segment: u32_at(0),
            offset: u64::from_be_bytes(offset),
            len: u32_at(12),
            crc: u32_at(16),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("body spool {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("body spool: a message of {0} bytes is too large for a segment")]
    TooLarge(usize),
    #[error("body spool: the body at segment {segment} offset {offset} fails its checksum")]
    Checksum { segment: u32, offset: u64 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.seg"))
}

struct Writer {
    segment: u32,
    file: Arc<File>,
    len: u64,
}

/// What is still referenced in a segment.
#[derive(Debug, Default, Clone, Copy)]
struct Live {
    bodies: u64,
    bytes: u64,
}

#[derive(Default)]
struct Books {
    /// The segment being written (kept here too, so a release and a roll agree on it).
    current: u32,
    /// Per segment (only segments with at least one referenced body are listed).
    live: HashMap<u32, Live>,
    /// Segments written since the last sync.
    dirty: BTreeSet<u32>,
    /// Segments no reference points into any more, to delete after the next durable flush.
    doomed: BTreeSet<u32>,
    /// Open read handles (the writer's segment included).
    open: HashMap<u32, Arc<File>>,
}

pub(super) struct Spool {
    dir: PathBuf,
    /// A segment is closed once it holds this many bytes.
    segment_bytes: u64,
    writer: Mutex<Writer>,
    books: Mutex<Books>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Spool {
    /// Opens the spool in `dir`, given every reference the database holds: segments none of
    /// them points into are deleted, and a fresh segment is started for writing.
    pub fn open(dir: &Path, refs: impl Iterator<Item = BodyRef>) -> Result<Spool, SpoolError> {
        Self::open_sized(dir, refs, SEGMENT_BYTES)
    }

    fn open_sized(
        dir: &Path,
        refs: impl Iterator<Item = BodyRef>,
        segment_bytes: u64,
    ) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut live: HashMap<u32, Live> = HashMap::new();
        for r in refs {
            live.entry(r.segment).or_default().add(r);
        }
        let mut newest = 0u32;
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let Some(n) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            newest = newest.max(n);
            if !live.contains_key(&n) {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        let segment = newest.wrapping_add(1).max(1);
        let file = Arc::new(create(dir, segment)?);
        let mut books = Books {
            current: segment,
            live,
            ..Books::default()
        };
        books.open.insert(segment, file.clone());
        sync_dir(dir)?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            segment_bytes,
            writer: Mutex::new(Writer {
                segment,
                file,
                len: 0,
            }),
            books: Mutex::new(books),
        })
    }

    /// Appends a body (not yet durable: the next [`Spool::sync`] makes it so).
    pub fn append(&self, body: &[u8]) -> Result<BodyRef, SpoolError> {
        let len = u32::try_from(body.len()).map_err(|_| SpoolError::TooLarge(body.len()))?;
        let mut w = lock(&self.writer);
        if w.len > 0 && w.len + u64::from(len) > self.segment_bytes {
            self.roll(&mut w)?;
        }
        let r = BodyRef {
            segment: w.segment,
            offset: w.len,
            len,
            crc: crc32fast::hash(body),
        };
        let path = segment_path(&self.dir, r.segment);
        w.file.write_all_at(body, r.offset).map_err(io(&path))?;
        w.len += u64::from(len);
        let mut books = lock(&self.books);
        books.live.entry(r.segment).or_default().add(r);
        books.dirty.insert(r.segment);
        Ok(r)
    }

    fn roll(&self, w: &mut Writer) -> Result<(), SpoolError> {
        let segment = w.segment.wrapping_add(1).max(1);
        let file = Arc::new(create(&self.dir, segment)?);
        sync_dir(&self.dir)?;
        let mut books = lock(&self.books);
        if !books.live.contains_key(&w.segment) {
            books.doomed.insert(w.segment);
        }
        books.current = segment;
        books.open.insert(segment, file.clone());
        *w = Writer {
            segment,
            file,
            len: 0,
        };
        Ok(())
    }

    /// Reads a body and checks it against its reference.
    pub fn read(&self, r: BodyRef) -> Result<Vec<u8>, SpoolError> {
        let path = segment_path(&self.dir, r.segment);
        let file = {
            let mut books = lock(&self.books);
            match books.open.get(&r.segment) {
                Some(f) => f.clone(),
                None => {
                    let f = Arc::new(File::open(&path).map_err(io(&path))?);
                    books.open.insert(r.segment, f.clone());
                    f
                }
            }
        };
        read_checked(&file, &path, r)
    }

    /// A reference was removed (in a transaction that has committed).
    pub fn release(&self, r: BodyRef) {
        let mut books = lock(&self.books);
        let current = books.current;
        if let Some(live) = books.live.get_mut(&r.segment) {
            live.bodies = live.bodies.saturating_sub(1);
            live.bytes = live.bytes.saturating_sub(u64::from(r.len));
            if live.bodies == 0 {
                books.live.remove(&r.segment);
                if r.segment != current {
                    books.doomed.insert(r.segment);
                }
            }
        }
    }

    /// Closed segments whose live bodies fill less than a quarter of them.
    pub fn sparse(&self) -> std::collections::HashSet<u32> {
        let books = lock(&self.books);
        books
            .live
            .iter()
            .filter(|&(&s, l)| s != books.current && l.bytes < self.segment_bytes / 4)
            .map(|(&s, _)| s)
            .collect()
    }

    /// Makes every body appended so far durable. Returns the segments that were spent when it
    /// finished: the caller deletes them (with [`Spool::delete`]) once the database is flushed,
    /// or hands them back (with [`Spool::spend_later`]) if the flush fails.
    pub fn sync(&self) -> Result<Vec<u32>, SpoolError> {
        let dirty: Vec<(u32, Arc<File>)> = {
            let mut books = lock(&self.books);
            std::mem::take(&mut books.dirty)
                .into_iter()
                .filter_map(|s| books.open.get(&s).map(|f| (s, f.clone())))
                .collect()
        };
        for (n, (segment, file)) in dirty.iter().enumerate() {
            if let Err(e) = file.sync_data() {
                let mut books = lock(&self.books);
                books.dirty.extend(dirty[n..].iter().map(|(s, _)| *s));
                return Err(io(&segment_path(&self.dir, *segment))(e));
            }
        }
        Ok(std::mem::take(&mut lock(&self.books).doomed)
            .into_iter()
            .collect())
    }

    /// Spent segments whose flush failed: they are deleted after a later one.
    pub fn spend_later(&self, segments: &[u32]) {
        lock(&self.books).doomed.extend(segments);
    }

    /// Deletes segments returned by [`Spool::sync`] (after the flush that followed it).
    pub fn delete(&self, segments: &[u32]) {
        for &segment in segments {
            let mut books = lock(&self.books);
            if books.live.contains_key(&segment) {
                continue;
            }
            books.open.remove(&segment);
            drop(books);
            let path = segment_path(&self.dir, segment);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "removing a spent body segment");
            }
        }
    }
}

impl Live {
    fn add(&mut self, r: BodyRef) {
        self.bodies += 1;
        self.bytes += u64::from(r.len);
    }
}

/// Reads a body straight from a spool directory (the copy for a backup or a rewrite).
pub(super) fn read_from(dir: &Path, r: BodyRef) -> Result<Vec<u8>, SpoolError> {
    let path = segment_path(dir, r.segment);
    let file = File::open(&path).map_err(io(&path))?;
    read_checked(&file, &path, r)
}

fn read_checked(file: &File, path: &Path, r: BodyRef) -> Result<Vec<u8>, SpoolError> {
    let mut buf = vec![0u8; r.len as usize];
    file.read_exact_at(&mut buf, r.offset).map_err(io(path))?;
    if crc32fast::hash(&buf) != r.crc {
        return Err(SpoolError::Checksum {
            segment: r.segment,
            offset: r.offset,
        });
    }
    Ok(buf)
}

fn create(dir: &Path, segment: u32) -> Result<File, SpoolError> {
    let path = segment_path(dir, segment);
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(io(&path))
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
