//! STARTTLS: agree to upgrade; the session discards anything pipelined and runs the handshake.

use super::reply::{Reply, common};
use super::state::{Next, SessionState, Step};

pub fn starttls(st: &SessionState) -> Step {
    if st.tls {
        return Step::reply(common::bad_sequence("TLS already active"));
    }
    Step::then(
        Reply::new(220, "2.0.0", "Ready to start TLS"),
        Next::StartTls,
    )
}

/// After a successful handshake the session forgets everything it knew (RFC 3207 §4.2).
pub fn reset_after_handshake(st: &mut SessionState) {
    st.tls = true;
    st.helo = None;
    st.esmtp = false;
    st.tx = None;
    st.auth = None;
}
