//! Returned mail on the inbound listener: bounces to `b+TOKEN@` VERP addresses and feedback
//! reports to `fbl@` are parsed and applied before the `250` and never queued. Parsing is
//! bounded (the bounce parser caps its own work), so this does not hold the session long.

use super::Context;
use super::reply::{Reply, common};
use crate::bounce::inbound::{self, Target};
use crate::store::NewRecipient;

fn target(address: &str) -> Option<Target> {
    let (local, _) = crate::mail::split(address)?;
    let local = local.to_ascii_lowercase();
    if let Some(token) = local.strip_prefix("b+") {
        return Some(Target::Verp(token.to_string()));
    }
    (local == "fbl").then_some(Target::Complaints)
}

/// Handles the VERP and complaint recipients of an inbound message; returns the rest.
pub async fn handle(
    ctx: &Context,
    recipients: Vec<NewRecipient>,
    raw: &[u8],
) -> Result<Vec<NewRecipient>, Reply> {
    let settings = ctx.settings();
    let mut rest = Vec::with_capacity(recipients.len());
    for r in recipients {
        let Some(t) = target(&r.address) else {
            rest.push(r);
            continue;
        };
        match inbound::process(&ctx.store, &settings, &ctx.verp_key, raw, &t).await {
            Ok(done) => {
                for (address, class, applied) in done {
                    crate::bounce::count(&ctx.metrics, class);
                    let shown =
                        crate::logging::redact(&address, settings.config.privacy.log_addresses);
                    tracing::info!(to = %shown, ?class, ?applied, "returned mail processed");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "processing returned mail failed");
                return Err(common::local_error());
            }
        }
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            target("b+abc@bounces.example.org"),
            Some(Target::Verp("abc".into()))
        );
        assert_eq!(target("B+AbC@x"), Some(Target::Verp("abc".into())));
        assert_eq!(target("FBL@x"), Some(Target::Complaints));
        assert_eq!(target("postmaster@x"), None);
        assert_eq!(target("u+abc@x"), None);
    }
}
