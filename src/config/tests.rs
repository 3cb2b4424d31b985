//! Loading and validating configuration: layering, unknown keys, and the file, key and reason of each refusal.

use super::*;
use std::io::Write;

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .unwrap_or_else(|e| panic!("{e}"));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    f
}

fn load_err(text: &str) -> ConfigError {
    let f = write(text);
    match load(Some(f.path())) {
        Ok(_) => panic!("config should be refused:\n{text}"),
        Err(e) => {
            assert_eq!(e.source_name, f.path().display().to_string(), "{e}");
            e
        }
    }
}

#[test]
fn embedded_default_loads() {
    let loaded = load(None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.listen.submission, vec!["127.0.0.1:2587"]);
    assert_eq!(loaded.config.limits.max_message_size.0, 25 << 20);
    assert_eq!(loaded.config.delivery.retry.len(), 7);
}

#[test]
fn file_values_and_human_units() {
    let f = write(
        "data_dir = \"/tmp/x\"\n[limits]\nmax_message_size = \"10MiB\"\ncommand_timeout = \"30s\"\n",
    );
    let c = load(Some(f.path()))
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    assert_eq!(c.limits.max_message_size.0, 10 << 20);
    assert_eq!(c.limits.command_timeout.0.as_secs(), 30);
    assert_eq!(
        c.limits.max_recipients, 1000,
        "unset keys keep their defaults"
    );
}

#[test]
fn errors_name_file_key_and_reason() {
    let e = load_err("[limits]\nmax_mesage_size = \"10MiB\"\n");
    assert_eq!(e.key, "limits.max_mesage_size");
    assert!(e.reason.contains("unknown key"), "{e}");

    let e = load_err("[limits]\nmax_message_size = \"ten\"\n");
    assert_eq!(e.key, "limits.max_message_size");
    assert!(e.reason.contains("invalid size"), "{e}");

    let e = load_err("postmaster = \"root\"\n");
    assert_eq!(e.key, "postmaster");
    assert!(e.reason.contains("not an email address"), "{e}");

    let e = load_err("[listen]\nsubmission = [\"nowhere\"]\n");
    assert_eq!(e.key, "listen.submission");

    let e = load_err("[[users]]\nname = \"a\"\npassword_hash = \"plain\"\n");
    assert_eq!(e.key, "users.0.password_hash");

    let e = load_err("[delivery.rate]\n\"gmail.com\" = \"fast\"\n");
    assert!(e.key.starts_with("delivery.rate"), "{e}");
    assert!(e.to_string().contains("invalid rate"), "{e}");
}

#[test]
fn missing_file_is_an_error() {
    let e = load(Some(std::path::Path::new("/nonexistent/herald.toml"))).err();
    assert!(e.is_some_and(|e| e.source_name == "/nonexistent/herald.toml"));
}

#[test]
fn secrets_are_redacted() {
    let mut c = Config::default();
    c.users.push(User {
        name: "u".into(),
        password_hash: "$argon2id$secret".into(),
        senders: vec![],
        may_send_service: false,
    });
    let text = redacted_toml(&c).unwrap_or_default();
    assert!(
        text.contains("<redacted>") && !text.contains("secret"),
        "{text}"
    );
}

#[test]
fn production_sample_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/herald.toml");
    let loaded = load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.listen.inbound, vec!["0.0.0.0:25"]);
}

/// A sender pattern is an address split at its last `@` (`mail::Address`): one with nothing
/// after its last `@` is refused. The old check split at the first `@` and let it through.
#[test]
fn sender_patterns_are_addresses() {
    let user = |sender: &str| {
        format!(
            "[[users]]\nname = \"a\"\nsenders = [\"{sender}\"]\npassword_hash = \
             \"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CfpRxz/GaU7pD3cM1oJkS1bgBzuS5G4V3kX8xk2bHUA\"\n"
        )
    };
    for bad in ["alice@example.org@", "alice", "@example.org", "*@"] {
        let e = load_err(&user(bad));
        assert_eq!(e.key, "users.0.senders", "{bad}: {e}");
    }
    for good in ["alice@example.org", "*@example.org", "*"] {
        let f = write(&user(good));
        assert!(load(Some(f.path())).is_ok(), "{good}");
    }
}

#[test]
fn an_empty_file_is_refused_naming_it() {
    for text in ["", "\n  \n", "# only a comment\n\n   # and another\n"] {
        let e = load_err(text);
        assert!(e.reason.contains("file is empty"), "{text:?}: {e}");
    }
    // One setting is enough; the embedded default (no file) still loads.
    let f = write("# a comment\nhostname = \"mx.example.org\"\n");
    assert!(load(Some(f.path())).is_ok());
    assert!(load(None).is_ok());
}

#[test]
fn signup_origins_must_be_origins() {
    for bad in [
        "https://example.org/form",
        "example.org",
        "ftp://example.org",
        "null",
    ] {
        let e = load_err(&format!("[http]\nsignup_origins = [\"{bad}\"]\n"));
        assert_eq!(e.key, "http.signup_origins", "{e}");
        assert!(e.reason.contains(bad), "{e}");
    }
    let f = write(
        "[http]\nsignup_origins = [\"https://www.example.org\", \"http://127.0.0.1:8080\"]\ntrusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]\n",
    );
    let c = load(Some(f.path()))
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    assert_eq!(c.http.trusted_proxies.len(), 2);
    let e = load_err("[http]\ntrusted_proxies = [\"proxy.local\"]\n");
    assert!(e.key.starts_with("http.trusted_proxies"), "{e}");
}

/// The issue 13 bounds: AUTH per account and `postmaster@`; their defaults and their errors.
#[test]
fn auth_and_postmaster_limits() {
    let c = Config::default();
    assert_eq!(c.limits.max_auth_failures_per_account, 10);
    assert_eq!(c.limits.postmaster_rate.to_string(), "10/hour");
    assert_eq!(c.limits.postmaster_max_size.0, 1 << 20);
    for (toml, key) in [
        (
            "max_auth_failures_per_account = 0",
            "limits.max_auth_failures_per_account",
        ),
        ("max_auth_failures = 0", "limits.max_auth_failures"),
        ("auth_failure_window = \"0s\"", "limits.auth_failure_window"),
        (
            "postmaster_max_size = \"100\"",
            "limits.postmaster_max_size",
        ),
        ("postmaster_rate = \"many\"", "limits.postmaster_rate"),
    ] {
        let e = load_err(&format!("[limits]\n{toml}\n"));
        assert_eq!(e.key, key, "{toml}: {e}");
    }
}

#[test]
fn connection_budgets_parse_and_are_checked() {
    let f = write(
        "[limits]\nconnections_per_listener = 200\nsubmission_reserve = 20\n\
         data_min_rate = \"1KiB/s\"\nstress_timeout = \"5s\"\nmax_idle_commands = 7\n",
    );
    let c = load(Some(f.path()))
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let l = &c.limits;
    assert_eq!(
        (l.connections_per_listener, l.submission_reserve),
        (200, 20)
    );
    assert_eq!((l.data_min_rate.0, l.stress_timeout.0.as_secs()), (1024, 5));
    assert_eq!(l.max_idle_commands, 7);

    let e = load_err("[limits]\nconnections_per_listener = 10\nsubmission_reserve = 10\n");
    assert_eq!(e.key, "limits.submission_reserve");
    let e = load_err("[limits]\ndata_min_rate = \"500\"\n");
    assert_eq!(e.key, "limits.data_min_rate");
    assert!(e.reason.contains("size per second"), "{e}");
    let e = load_err("[limits]\nmax_idle_commands = 0\n");
    assert_eq!(e.key, "limits.max_idle_commands");
}
