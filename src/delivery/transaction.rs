//! One SMTP transaction on an open [`Connection`]: MAIL, one RCPT per recipient, DATA and the
//! content. With PIPELINING the envelope goes out as one group (RFC 2920), so a message costs
//! two round trips instead of three plus one per recipient. The content is dot-stuffed by
//! [`wire::content`] and written in one piece. One [`Outcome`] per recipient, in order.

use super::client::{Connection, from_error, reply_of, transient};
use super::{Origin, Outcome, Reply, Status, wire};
use mail_send::smtp::message::Parameters;
use smtp_proto::Response;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn lost() -> Outcome {
    transient(
        Status::new(4, 4, 0),
        "no answer for this recipient".into(),
        false,
    )
}

/// Which command a reply answered; a refusal says so, as Postfix does ("in reply to RCPT TO
/// command"), which also tells the bounce classifier an address was refused, not content.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Mail,
    Rcpt,
    Data,
    Content,
}

fn outcome_of(r: &Response<String>, stage: Stage) -> Outcome {
    let reply = reply_of(r);
    if r.code / 100 == 2 {
        return Outcome::remote(reply);
    }
    let command = match stage {
        Stage::Mail => "MAIL FROM command",
        Stage::Rcpt => "RCPT TO command",
        Stage::Data => "DATA command",
        Stage::Content => "end of DATA command",
    };
    Outcome::remote(reply.noted(&format!("in reply to {command}")))
}

/// Refused recipients keep their own outcome; the accepted ones share the content's.
fn merge(results: Vec<Option<Outcome>>, content: &Outcome) -> Vec<Outcome> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| content.clone()))
        .collect()
}

/// A UTF-8 address for a server without SMTPUTF8 (RFC 6531 §3.2): it can never go there as it
/// is, so it fails now; `Local` (Herald cannot carry it, the recipient did nothing) with a DSN
/// to the sender.
fn needs_smtputf8(peer: std::net::SocketAddr, what: &str) -> Outcome {
    let text = format!("{peer} does not support SMTPUTF8, which the {what} address needs");
    Outcome::permanent(Origin::Local, Reply::new(550, Status::new(5, 6, 7), text))
}

impl Connection {
    /// One transaction. Recipients the server refused get their own outcome; the accepted
    /// ones share the outcome of the content. Without SMTPUTF8 at the server a UTF-8 sender
    /// fails every recipient and a UTF-8 recipient itself, before anything is sent.
    pub async fn send(&mut self, sender: &str, recipients: &[String], body: &[u8]) -> Vec<Outcome> {
        let utf8 = !sender.is_ascii() || recipients.iter().any(|r| !r.is_ascii());
        if !utf8 || self.smtputf8 {
            return self.transaction(sender, recipients, body, utf8).await;
        }
        if !sender.is_ascii() {
            return vec![needs_smtputf8(self.peer, "sender"); recipients.len()];
        }
        let ascii: Vec<String> = recipients
            .iter()
            .filter(|r| r.is_ascii())
            .cloned()
            .collect();
        let mut sent = if ascii.is_empty() {
            Vec::new().into_iter()
        } else {
            self.transaction(sender, &ascii, body, false)
                .await
                .into_iter()
        };
        recipients
            .iter()
            .map(|r| match r.is_ascii() {
                true => sent.next().unwrap_or_else(lost),
                false => needs_smtputf8(self.peer, "recipient"),
            })
            .collect()
    }

    async fn transaction(
        &mut self,
        sender: &str,
        recipients: &[String],
        body: &[u8],
        utf8: bool,
    ) -> Vec<Outcome> {
        let result = if self.pipelining {
            self.send_pipelined(sender, recipients, body, utf8).await
        } else {
            self.send_lockstep(sender, recipients, body, utf8).await
        };
        match result {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let outcome = self.fail(e).await;
                vec![outcome; recipients.len()]
            }
        }
    }

    async fn send_pipelined(
        &mut self,
        sender: &str,
        recipients: &[String],
        body: &[u8],
        utf8: bool,
    ) -> Result<Vec<Outcome>, mail_send::Error> {
        let n = recipients.len();
        let mut buf = std::mem::take(&mut self.wbuf);
        buf.clear();
        wire::envelope(&mut buf, sender, recipients, utf8);
        let replies = self.exchange(&buf, n + 2).await;
        self.wbuf = buf;
        let replies = replies?;
        let (mail, rest) = replies
            .split_first()
            .ok_or(mail_send::Error::UnparseableReply)?;
        let (data, rcpts) = rest
            .split_last()
            .ok_or(mail_send::Error::UnparseableReply)?;
        let results: Vec<Option<Outcome>> = if mail.code / 100 != 2 {
            vec![Some(outcome_of(mail, Stage::Mail)); n]
        } else {
            rcpts
                .iter()
                .map(|r| (r.code / 100 != 2).then(|| outcome_of(r, Stage::Rcpt)))
                .collect()
        };
        let accepted = results.iter().any(Option::is_none);
        let content = match (data.code, accepted) {
            (354, true) => self.content(body).await?,
            (354, false) => {
                // A server that opens DATA with no recipient gets an empty message ended at
                // once; nobody receives it.
                self.content(b"").await?;
                self.reset().await;
                lost()
            }
            _ => {
                self.reset().await;
                outcome_of(data, Stage::Data)
            }
        };
        Ok(merge(results, &content))
    }

    async fn send_lockstep(
        &mut self,
        sender: &str,
        recipients: &[String],
        body: &[u8],
        utf8: bool,
    ) -> Result<Vec<Outcome>, mail_send::Error> {
        let n = recipients.len();
        let mut params = Parameters::new();
        if utf8 {
            params.add("SMTPUTF8");
        }
        match self.client.mail_from(sender, &params).await {
            Ok(()) => {}
            Err(mail_send::Error::UnexpectedReply(r)) => {
                self.reset().await;
                return Ok(vec![outcome_of(&r, Stage::Mail); n]);
            }
            Err(e) => return Ok(vec![self.fail(e).await; n]),
        }
        let mut results: Vec<Option<Outcome>> = vec![None; n];
        for (i, rcpt) in recipients.iter().enumerate() {
            if let Err(e) = self.client.rcpt_to(rcpt, &Parameters::default()).await {
                if let mail_send::Error::UnexpectedReply(r) = &e {
                    results[i] = Some(outcome_of(r, Stage::Rcpt));
                    continue;
                }
                let (outcome, broken) = from_error(e);
                if broken {
                    self.broken = true;
                    return Ok(vec![outcome; n]);
                }
                results[i] = Some(outcome);
            }
        }
        if results.iter().all(Option::is_some) {
            self.reset().await;
            return Ok(results.into_iter().flatten().collect());
        }
        let r = self.client.cmd(b"DATA\r\n").await?;
        let content = if r.code == 354 {
            self.content(body).await?
        } else {
            self.reset().await;
            outcome_of(&r, Stage::Data)
        };
        Ok(merge(results, &content))
    }

    /// Sends the content after a 354 and reads the final reply.
    async fn content(&mut self, body: &[u8]) -> Result<Outcome, mail_send::Error> {
        let mut buf = std::mem::take(&mut self.wbuf);
        buf.clear();
        wire::content(&mut buf, body);
        let reply = self.exchange(&buf, 1).await;
        if buf.capacity() > 1 << 20 {
            buf = Vec::new();
        }
        self.wbuf = buf;
        let reply = reply?;
        let r = reply.first().ok_or(mail_send::Error::UnparseableReply)?;
        let o = outcome_of(r, Stage::Content);
        if !matches!(o, Outcome::Delivered { .. }) {
            self.reset().await;
        }
        Ok(o)
    }

    /// Writes `bytes` in one go and reads `replies` replies, all under the command timeout.
    async fn exchange(
        &mut self,
        bytes: &[u8],
        replies: usize,
    ) -> Result<Vec<Response<String>>, mail_send::Error> {
        let timeout = self.client.timeout;
        let client = &mut self.client;
        tokio::time::timeout(timeout, async {
            client.stream.write_all(bytes).await?;
            client.stream.flush().await?;
            client.read_many(replies).await
        })
        .await
        .map_err(|_| mail_send::Error::Timeout)?
    }

    async fn fail(&mut self, e: mail_send::Error) -> Outcome {
        let (outcome, broken) = from_error(e);
        if broken {
            self.broken = true;
        } else {
            self.reset().await;
        }
        outcome
    }

    async fn reset(&mut self) {
        if self.client.rset().await.is_err() {
            self.broken = true;
        }
    }

    pub async fn quit(mut self) {
        if !self.broken {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), self.client.cmd(b"QUIT\r\n")).await;
        }
    }
}
