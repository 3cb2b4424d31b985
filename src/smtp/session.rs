//! One SMTP connection: reads commands and content, dispatches to the verb handlers, writes
//! their replies (batched for PIPELINING), and upgrades to TLS. The only place that reads or
//! writes a session's connection, whatever stream it runs over (TCP in the daemon, a
//! `tokio::io::duplex` pipe in `smtp/tests`).

use super::auth::{self, Flow};
use super::body::{DataReceiver, Received};
use super::command::{self, Command, ParseError};
use super::conns::Slot;
use super::reply::{Reply, common};
use super::state::{Next, SessionState, Step};
use super::{Context, data, ehlo, mail, rcpt, starttls};
use crate::net::{Conn, SessionStream};
use bytes::{Buf, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The last replies and the close get this long before the connection is dropped unanswered.
const LAST_WORDS: Duration = Duration::from_secs(10);

/// Why reading stopped.
#[derive(Debug)]
enum ReadEnd {
    Closed,
    Timeout,
    TooLong,
    /// Draining (no transaction open) or the grace period ended.
    Stop,
    /// A client from a lighter address took this session's slot.
    Evicted,
}

/// A session over any stream: TCP in the daemon, an in-memory pipe in the in-process tests.
pub struct Session<S> {
    ctx: Arc<Context>,
    conn: Conn<S>,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    st: SessionState,
    errors: u32,
    /// Commands that did nothing since the last accepted message (`limits.max_idle_commands`).
    idle: u32,
    slot: Slot,
    /// A BDAT message in progress: when its first chunk began, and its bytes so far.
    bdat: Option<(Instant, u64)>,
}

impl<S: SessionStream> Session<S> {
    pub fn new(ctx: Arc<Context>, conn: Conn<S>, st: SessionState, slot: Slot) -> Self {
        Session {
            ctx,
            conn,
            rbuf: BytesMut::with_capacity(4096),
            wbuf: Vec::with_capacity(1024),
            st,
            errors: 0,
            idle: 0,
            slot,
            bdat: None,
        }
    }

    pub async fn run(mut self) {
        let hostname = self.ctx.settings().config.hostname.clone();
        self.send(&Reply::plain(220, vec![format!("{hostname} ESMTP Herald")]));
        loop {
            match self.turn().await {
                Ok(true) => {}
                Ok(false) => break,
                Err(end) => {
                    match end {
                        ReadEnd::Timeout => self.send(&common::timeout()),
                        ReadEnd::Stop => self.send(&common::shutting_down()),
                        ReadEnd::Evicted => self.send(&common::evicted()),
                        ReadEnd::Closed | ReadEnd::TooLong => {}
                    }
                    break;
                }
            }
        }
        let _ = tokio::time::timeout(LAST_WORDS, async {
            let _ = self.flush().await;
            let _ = self.conn.shutdown().await;
        })
        .await;
    }

    /// One command and everything it leads to. `Ok(false)` ends the session.
    async fn turn(&mut self) -> Result<bool, ReadEnd> {
        if self.ctx.draining.is_cancelled() && self.st.tx.is_none() {
            return Err(ReadEnd::Stop);
        }
        let line = match self.read_line().await {
            Err(ReadEnd::TooLong) => {
                // A SASL exchange ends here: the next line is a command, not a credential.
                self.st.auth = None;
                return Ok(self.answer(common::line_too_long()));
            }
            other => other?,
        };
        let step = if self.st.auth.is_some() {
            let flow = auth::step(&mut self.st, &line);
            self.auth_flow(flow).await.into()
        } else {
            match command::parse(&line) {
                Ok(cmd) => self.dispatch(cmd).await,
                Err(e @ (ParseError::Unknown | ParseError::Garbled)) => self
                    .idle_command()
                    .unwrap_or_else(|| common::parse_error(e).into()),
                Err(e) => common::parse_error(e).into(),
            }
        };
        // A BDAT chunk is answered after its bytes are read, not before.
        let deferred = matches!(step.next, Next::ReadChunk { .. });
        if !deferred && !self.answer(step.reply) {
            return Ok(false);
        }
        match step.next {
            Next::Continue => Ok(true),
            Next::Close => Ok(false),
            Next::StartTls => self.start_tls().await,
            Next::ReadData => {
                let received = self.read_data().await?;
                Ok(self.finish(received).await)
            }
            Next::ReadChunk { size, last } => self.chunk(size, last).await,
        }
    }

    async fn dispatch(&mut self, cmd: Command) -> Step {
        if self.ctx.draining.is_cancelled()
            && !matches!(
                cmd,
                Command::Rcpt { .. } | Command::Data | Command::Bdat { .. } | Command::Noop
            )
        {
            return Step::then(common::shutting_down(), Next::Close);
        }
        if matches!(
            cmd,
            Command::Noop | Command::Rset | Command::Help | Command::Vrfy
        ) && let Some(end) = self.idle_command()
        {
            return end;
        }
        let settings = self.ctx.settings();
        let st = &mut self.st;
        match cmd {
            Command::Ehlo(name) => ehlo::ehlo(st, &settings, name).into(),
            Command::Helo(name) => ehlo::helo(st, &settings, name).into(),
            Command::StartTls => starttls::starttls(st),
            Command::Auth { mechanism, initial } => {
                let flow = auth::start(st, &mechanism, initial);
                self.auth_flow(flow).await.into()
            }
            Command::Mail { from, params } => {
                mail::mail_stored(st, &settings, &self.ctx.store, from, params).into()
            }
            Command::Rcpt { to, params } => {
                rcpt::rcpt(st, &settings, &self.ctx.store, to, params).into()
            }
            Command::Data => data::data(st),
            Command::Bdat { size, last } => data::bdat(st, &settings, size, last),
            Command::Rset => {
                st.tx = None;
                Reply::ok("Reset state").into()
            }
            Command::Noop => Reply::ok("OK").into(),
            Command::Quit => Step::then(Reply::new(221, "2.0.0", "Bye"), Next::Close),
            Command::Vrfy => {
                Reply::new(252, "2.5.0", "Cannot VRFY user, but will accept message").into()
            }
            Command::Expn => Reply::new(502, "5.5.1", "EXPN not available").into(),
            Command::Help => Reply::new(214, "2.0.0", "See RFC 5321").into(),
        }
    }

    /// Counts a command that does nothing; past `limits.max_idle_commands` it ends the session.
    fn idle_command(&mut self) -> Option<Step> {
        self.idle += 1;
        let max = self.ctx.settings().config.limits.max_idle_commands;
        (self.idle > max).then(|| Step::then(common::too_many_idle_commands(), Next::Close))
    }

    /// Ends a message (DATA, or BDAT LAST) and answers it; an accepted one resets the count of
    /// commands that do nothing.
    async fn finish(&mut self, received: Received) -> bool {
        self.bdat = None;
        let reply = data::finish(&self.ctx, &mut self.st, received).await;
        if reply.code == 250 {
            self.idle = 0;
        }
        self.answer(reply)
    }

    async fn auth_flow(&mut self, flow: Flow) -> Reply {
        match flow {
            Flow::Reply(reply) => reply,
            Flow::Verify { user, password } => {
                auth::verify(&self.ctx, &mut self.st, user, password).await
            }
        }
    }

    /// Queues a reply; counts errors. `false` when the session must end.
    fn answer(&mut self, reply: Reply) -> bool {
        self.send(&reply);
        if reply.code == 421 {
            return false;
        }
        if reply.code >= 500 {
            self.errors += 1;
            if self.errors >= self.ctx.settings().config.limits.max_errors {
                self.send(&common::too_many_errors());
                return false;
            }
        }
        true
    }

    fn send(&mut self, reply: &Reply) {
        if let Some(why) = reply.rejection {
            self.ctx.metrics.rejected(why);
        }
        reply.write_to(&mut self.wbuf);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.conn.write_all(&self.wbuf).await?;
            self.conn.flush().await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// The grace of a unit of work: `limits.stress_timeout` instead of `normal` while an
    /// unauthenticated session's listener is under stress.
    fn grace(&self, normal: Duration) -> Duration {
        let stress = self.ctx.settings().config.limits.stress_timeout.0;
        let unauth = self.st.user.is_none() && !self.st.trusted;
        if unauth && stress < normal && self.slot.stressed() {
            stress
        } else {
            normal
        }
    }

    /// A message's deadline: its grace from `start`, plus its bytes so far at the minimum rate.
    fn data_deadline(&self, start: Instant, bytes: u64) -> Instant {
        let l = &self.ctx.settings().config.limits;
        let earned = Duration::from_secs_f64(bytes as f64 / l.data_min_rate.0.max(1) as f64);
        start + self.grace(l.data_timeout.0) + earned.min(Duration::from_secs(86_400))
    }

    /// Reads more input by `deadline`; pending replies go out first (PIPELINING: one write per
    /// batch), within the same deadline.
    async fn fill(&mut self, deadline: Instant) -> Result<(), ReadEnd> {
        if self.st.user.is_some() {
            self.slot.authenticated();
        }
        let evicted = self.slot.evicted().clone();
        tokio::select! {
            flushed = tokio::time::timeout_at(deadline, self.flush()) => match flushed {
                Err(_) => return Err(ReadEnd::Timeout),
                Ok(Err(_)) => return Err(ReadEnd::Closed),
                Ok(Ok(())) => {}
            },
            _ = evicted.cancelled() => return Err(ReadEnd::Evicted),
        }
        let stop = if self.st.tx.is_none() {
            self.ctx.draining.clone()
        } else {
            self.ctx.stop_now.clone()
        };
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(16 * 1024);
        }
        tokio::select! {
            read = tokio::time::timeout_at(deadline, self.conn.read_buf(&mut self.rbuf)) => match read {
                Err(_) => Err(ReadEnd::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => Err(ReadEnd::Closed),
                Ok(Ok(_)) => Ok(()),
            },
            _ = stop.cancelled() => Err(ReadEnd::Stop),
            _ = evicted.cancelled() => Err(ReadEnd::Evicted),
        }
    }

    /// One command line (up to and including LF). The wait for it and then the whole line from
    /// its first byte each get `limits.command_timeout` (however the bytes trickle in).
    /// Over-long lines are read to their end and thrown away, then reported as
    /// [`ReadEnd::TooLong`].
    async fn read_line(&mut self) -> Result<BytesMut, ReadEnd> {
        let settings = self.ctx.settings();
        let max = settings.config.limits.max_line_length;
        let timeout = settings.config.limits.command_timeout.0;
        if self.st.tx.is_none() {
            self.bdat = None;
        }
        let waiting = Instant::now();
        let mut first = (!self.rbuf.is_empty()).then_some(waiting);
        let mut discarding = false;
        loop {
            if let Some(pos) = self.rbuf.iter().position(|&b| b == b'\n') {
                let line = self.rbuf.split_to(pos + 1);
                if discarding || line.len() > max {
                    return Err(ReadEnd::TooLong);
                }
                return Ok(line);
            }
            if self.rbuf.len() > max {
                discarding = true;
                self.rbuf.clear();
            }
            let deadline = first.unwrap_or(waiting) + self.grace(timeout);
            self.fill(deadline).await?;
            first.get_or_insert_with(Instant::now);
        }
    }

    /// DATA content, by `limits.data_timeout` from its start plus its size at
    /// `limits.data_min_rate`.
    async fn read_data(&mut self) -> Result<Received, ReadEnd> {
        let settings = self.ctx.settings();
        let max = settings.config.limits.max_message_size.0 as usize;
        let mut receiver = DataReceiver::new(max);
        let start = Instant::now();
        let mut bytes = 0u64;
        loop {
            if !self.rbuf.is_empty() {
                bytes += self.rbuf.len() as u64;
                match receiver.feed(&self.rbuf) {
                    Some(n) => {
                        self.rbuf.advance(n);
                        return Ok(receiver.finish());
                    }
                    None => self.rbuf.clear(),
                }
            }
            self.fill(self.data_deadline(start, bytes)).await?;
        }
    }

    /// Reads one BDAT chunk into the transaction; answers it, and ends the message on LAST.
    /// The whole message (all its chunks and the commands between) has the deadline DATA has,
    /// from the start of its first chunk.
    async fn chunk(&mut self, size: u64, last: bool) -> Result<bool, ReadEnd> {
        let (start, mut bytes) = *self.bdat.get_or_insert((Instant::now(), 0));
        if Instant::now() >= self.data_deadline(start, bytes) {
            return Err(ReadEnd::Timeout);
        }
        let mut remaining = size;
        loop {
            let take = remaining.min(self.rbuf.len() as u64) as usize;
            let chunk = self.rbuf.split_to(take);
            bytes += take as u64;
            if let Some(chunks) = self
                .st
                .tx
                .as_mut()
                .filter(|t| t.chunk_error.is_none())
                .and_then(|t| t.chunks.as_mut())
            {
                chunks.feed(&chunk);
            }
            remaining -= take as u64;
            if remaining == 0 {
                break;
            }
            self.fill(self.data_deadline(start, bytes)).await?;
        }
        self.bdat = Some((start, bytes));
        if !last {
            let reply = data::chunk_ack(&self.st, size);
            return Ok(self.answer(reply));
        }
        let received = match self.st.tx.as_mut().and_then(|t| t.chunks.take()) {
            Some(chunks) => chunks.finish(),
            None => DataReceiver::new(0).finish(),
        };
        Ok(self.finish(received).await)
    }

    async fn start_tls(&mut self) -> Result<bool, ReadEnd> {
        self.flush().await.map_err(|_| ReadEnd::Closed)?;
        // Anything the client pipelined behind STARTTLS is discarded, never executed.
        self.rbuf.clear();
        let limit = self.ctx.settings().config.limits.tls_handshake_timeout.0;
        if !self.conn.accept_tls(&self.ctx.tls, limit).await {
            return Err(ReadEnd::Closed);
        }
        starttls::reset_after_handshake(&mut self.st);
        Ok(true)
    }
}
