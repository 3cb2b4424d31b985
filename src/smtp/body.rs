//! Pure receivers for message content: [`DataReceiver`] for `DATA` (dot-unstuffing, end only on
//! `CRLF.CRLF`) and [`ChunkReceiver`] for `BDAT`. Both flag bare LF / bare CR (SMTP smuggling)
//! and NUL bytes, and stop storing past the size limit while still consuming input. No I/O;
//! fuzzed.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// At the start of a line reached through a proper CRLF.
    LineStart,
    InLine,
    /// Saw CR (not yet stored).
    Cr,
    /// `CRLF .` at a line start.
    Dot,
    /// `CRLF . CR`
    DotCr,
}

/// What a finished receiver hands over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// The message, without the terminating `.CRLF`, ending with CRLF when non-empty.
    pub body: Vec<u8>,
    /// Total size the client sent (after unstuffing), even past the limit.
    pub size: u64,
    /// A bare LF or bare CR was seen.
    pub bare_newline: bool,
    /// The size limit was exceeded; `body` is truncated.
    pub oversize: bool,
    /// A NUL byte was seen (RFC 5321 §4.1.4 content must not carry one; refused at the door).
    pub nul: bool,
}

pub struct DataReceiver {
    st: St,
    max: usize,
    out: Received,
}

impl DataReceiver {
    pub fn new(max: usize) -> Self {
        DataReceiver {
            st: St::LineStart,
            max,
            out: Received::default(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.out.size += bytes.len() as u64;
        self.out.nul |= memchr::memchr(0, bytes).is_some();
        if self.out.oversize || self.out.body.len() + bytes.len() > self.max {
            // Past the limit nothing more is kept; the message will be refused.
            self.out.oversize = true;
        } else {
            self.out.body.extend_from_slice(bytes);
        }
    }

    /// Byte within a line (also used after an unstuffed dot).
    fn in_line(&mut self, b: u8) {
        match b {
            b'\r' => self.st = St::Cr,
            b'\n' => {
                self.out.bare_newline = true;
                self.push(b"\n");
                self.st = St::InLine;
            }
            _ => {
                self.push(&[b]);
                self.st = St::InLine;
            }
        }
    }

    /// Feeds input; returns `Some(consumed)` once the end marker has been read (bytes after it
    /// belong to the next command), `None` if more input is needed.
    pub fn feed(&mut self, input: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            if self.st == St::InLine {
                // Fast path: everything up to the next CR or LF is plain content.
                let rest = &input[i..];
                let n = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                if n > 0 {
                    self.push(&rest[..n]);
                    i += n;
                    continue;
                }
            }
            let b = input[i];
            match self.st {
                St::LineStart if b == b'.' => self.st = St::Dot,
                St::LineStart | St::InLine => self.in_line(b),
                St::Cr => match b {
                    b'\n' => {
                        self.push(b"\r\n");
                        self.st = St::LineStart;
                    }
                    _ => {
                        self.out.bare_newline = true;
                        self.push(b"\r");
                        self.in_line(b);
                    }
                },
                St::Dot if b == b'\r' => self.st = St::DotCr,
                St::Dot => self.in_line(b),
                St::DotCr => {
                    if b == b'\n' {
                        return Some(i + 1);
                    }
                    self.out.bare_newline = true;
                    self.push(b"\r");
                    self.in_line(b);
                }
            }
            i += 1;
        }
        None
    }

    pub fn finish(self) -> Received {
        self.out
    }
}

/// Collects `BDAT` chunks (no dot-stuffing), checking line endings across chunk boundaries.
pub struct ChunkReceiver {
    prev_cr: bool,
    max: usize,
    out: Received,
}

impl ChunkReceiver {
    pub fn new(max: usize) -> Self {
        ChunkReceiver {
            prev_cr: false,
            max,
            out: Received::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            match b {
                b'\n' if !self.prev_cr => self.out.bare_newline = true,
                b'\n' => {}
                _ if self.prev_cr => self.out.bare_newline = true,
                _ => {}
            }
            self.prev_cr = b == b'\r';
        }
        self.out.size += chunk.len() as u64;
        self.out.nul |= memchr::memchr(0, chunk).is_some();
        if self.out.body.len() + chunk.len() > self.max {
            self.out.oversize = true;
        } else {
            self.out.body.extend_from_slice(chunk);
        }
    }

    pub fn size(&self) -> u64 {
        self.out.size
    }

    pub fn finish(mut self) -> Received {
        if self.prev_cr {
            self.out.bare_newline = true;
        }
        self.out
    }
}

#[cfg(test)]
mod tests;
