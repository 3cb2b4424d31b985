//! Bounces: the RFC 3464 DSNs Herald sends (`notify`), and reading the ones it receives —
//! parsing DSNs, complaints and auto-replies (`parse`), classifying a failure as hard or soft
//! (`classify`, also used for synchronous 5xx replies), and scoring the parser on the shared
//! corpus (`eval`); what a classified finding does to suppression and memberships (`policy`),
//! and returned mail at VERP and complaint addresses (`inbound`).

pub mod classify;
pub mod eval;
pub mod inbound;
pub mod notify;
pub mod parse;
pub mod policy;

use crate::metrics::Metrics;
use parse::Class;

/// Counts a classified failure or report: hard and soft bounces, complaints.
pub fn count(metrics: &Metrics, class: Class) {
    match class {
        Class::Hard => metrics.bounce(true),
        Class::Soft => metrics.bounce(false),
        Class::Complaint => metrics.complaint(),
        Class::AutoReply | Class::Unknown => {}
    }
}
