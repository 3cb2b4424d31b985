//! EHLO and HELO: greet back and advertise what this role offers right now.

use super::reply::Reply;
use super::state::SessionState;
use crate::config::Settings;

pub fn ehlo(st: &mut SessionState, settings: &Settings, client: String) -> Reply {
    st.tx = None;
    st.helo = Some(client);
    st.esmtp = true;
    let mut lines = vec![
        settings.config.hostname.clone(),
        "PIPELINING".into(),
        "8BITMIME".into(),
        "SMTPUTF8".into(),
        format!("SIZE {}", settings.config.limits.max_message_size.0),
        "ENHANCEDSTATUSCODES".into(),
    ];
    if !st.tls {
        lines.push("STARTTLS".into());
    }
    if st.role.is_submission() && st.tls && st.user.is_none() {
        lines.push("AUTH PLAIN LOGIN".into());
    }
    lines.push("DSN".into());
    lines.push("CHUNKING".into());
    Reply::plain(250, lines)
}

pub fn helo(st: &mut SessionState, settings: &Settings, client: String) -> Reply {
    st.tx = None;
    st.helo = Some(client);
    st.esmtp = false;
    Reply::plain(250, vec![settings.config.hostname.clone()])
}
