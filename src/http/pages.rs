//! The HTML pages (pure functions): plain, accessible, readable on a phone, no scripts. Every
//! value shown is escaped.

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:1.125rem/1.6 system-ui,-apple-system,\"Segoe UI\",sans-serif;\
color:#1a1a1a;background:#fff;margin:0}main{max-width:34rem;margin:0 auto;padding:2rem 1.25rem}\
h1{font-size:1.6rem;line-height:1.25}button{font:inherit;font-weight:600;color:#fff;\
background:#1d4ed8;border:0;border-radius:.4rem;padding:.8rem 1.4rem;min-height:3rem;\
cursor:pointer}button:focus{outline:3px solid #f59e0b;outline-offset:2px}";

/// The pages' `Content-Security-Policy`: nothing loads or runs but the one inline style
/// (by its hash), forms post only back here, and no site may frame a page (clickjacking).
pub fn content_security_policy() -> String {
    use base64::Engine;
    use sha2::Digest;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{t}</title>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n<main>\n<h1>{t}</h1>\n{body}</main>\n</body>\n</html>\n",
        t = escape(title)
    )
}

fn button_form(label: &str, hidden: Option<(&str, &str)>) -> String {
    let hidden = hidden
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(k),
                escape(v)
            )
        })
        .unwrap_or_default();
    format!(
        "<form method=\"post\">\n{hidden}<button type=\"submit\">{}</button>\n</form>\n",
        escape(label)
    )
}

/// GET /confirm/TOKEN: one button; the GET itself changes nothing.
pub fn confirm_form(list: &str, who: &str) -> String {
    page(
        &format!("Confirm your subscription to {list}"),
        &format!(
            "<p>Press the button to confirm that {} wants to receive {}.</p>\n{}",
            escape(who),
            escape(list),
            button_form("Confirm subscription", None)
        ),
    )
}

pub fn confirmed(list: &str) -> String {
    page(
        "Subscription confirmed",
        &format!(
            "<p>You are now subscribed to {}. Every message has a link to unsubscribe.</p>\n",
            escape(list)
        ),
    )
}

/// The subscription is no longer pending (unsubscribed, bounced or expired meanwhile).
pub fn not_pending(list: &str) -> String {
    page(
        "Nothing to confirm",
        &format!(
            "<p>This link no longer confirms a subscription to {}. Please sign up again.</p>\n",
            escape(list)
        ),
    )
}

/// GET /unsubscribe/TOKEN: one button; link scanners that prefetch change nothing.
pub fn unsubscribe_form(list: &str, who: &str) -> String {
    page(
        &format!("Unsubscribe from {list}"),
        &format!(
            "<p>Press the button to stop {} from receiving {}.</p>\n{}",
            escape(who),
            escape(list),
            button_form("Unsubscribe", Some(("List-Unsubscribe", "One-Click")))
        ),
    )
}

pub fn unsubscribed(list: &str) -> String {
    page(
        "You are unsubscribed",
        &format!(
            "<p>You will not receive {} any more. No further mail will be sent about this.</p>\n",
            escape(list)
        ),
    )
}

/// After POST /subscribe: the same page whether or not the address was already a member.
pub fn check_inbox(list: &str) -> String {
    page(
        "Check your inbox",
        &format!(
            "<p>If the address can receive {}, a message with a confirmation link is on its \
             way. You are not subscribed until you confirm.</p>\n",
            escape(list)
        ),
    )
}

pub fn error(title: &str, text: &str) -> String {
    page(title, &format!("<p>{}</p>\n", escape(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_pages_need_no_script() {
        let p = unsubscribe_form("<News & \"Co\">", "a***@b.test");
        assert!(p.contains("&lt;News &amp; &quot;Co&quot;&gt;"));
        assert!(!p.contains("<News"));
        assert!(!p.contains("<script"));
        assert!(p.contains("name=\"viewport\""));
        assert!(p.contains("<form method=\"post\">"));
        assert!(p.contains("name=\"List-Unsubscribe\" value=\"One-Click\""));
    }

    #[test]
    fn the_policy_allows_the_one_style_and_no_framing() {
        let csp = content_security_policy();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(
            !csp.contains("script-src") && !csp.contains("unsafe"),
            "{csp}"
        );
        let p = error("x", "y");
        assert_eq!(p.matches("<style>").count(), 1);
        assert!(p.contains(&format!("<style>{STYLE}</style>")));
    }
}
