//! The external tools and data some tests need: swaks (with TLS), python3 (and its
//! prometheus_client), chromium, script, and the bounce corpus. When one is missing the test
//! prints a `SKIP:` note naming it and passes; with `HERALD_REQUIRE_TOOLS=1` (which `.ci/run`
//! sets) it fails instead, naming the tool and the Debian package that provides it, so a CI run
//! cannot pass by checking nothing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The variable that turns every skip for a missing tool into a failure.
pub const REQUIRE: &str = "HERALD_REQUIRE_TOOLS";
/// The variable that names the bounce corpus directory (the one holding `public/`).
pub const CORPUS: &str = "HERALD_CORPUS";

/// Whether `HERALD_REQUIRE_TOOLS=1`.
pub fn required() -> bool {
    std::env::var(REQUIRE).as_deref() == Ok("1")
}

/// Reports that `what` is unusable (`why`, with the package that provides it): a panic under
/// `HERALD_REQUIRE_TOOLS=1`, a SKIP note otherwise. Returns false, for `have(..) || missing(..)`.
pub fn missing(what: &str, why: &str) -> bool {
    if required() {
        panic!("{REQUIRE}=1 and {what} is missing: {why}");
    }
    eprintln!(
        "SKIP: {what} is missing: {why} (.ci/run installs or finds it; {REQUIRE}=1 makes this fail)"
    );
    false
}

/// The Debian package that provides `program`, for the messages.
fn package(program: &str) -> &str {
    match program {
        "script" => "bsdutils",
        "setpriv" => "util-linux",
        other => other,
    }
}

/// `program` as the executable it names on PATH, if any (no shell involved).
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether `program` is on PATH; when it is not, a skip or (required) a failure naming it.
pub fn have(program: &str) -> bool {
    find_on_path(program).is_some()
        || missing(
            program,
            &format!("not on PATH (Debian package {})", package(program)),
        )
}

/// Whether swaks is on PATH and can do TLS: without Net::SSLeay it runs but every `--tls`
/// fails with `TLS not available`, so that counts as missing.
pub fn have_swaks_tls() -> bool {
    if !have("swaks") {
        return false;
    }
    let out = Command::new("swaks").arg("--support").output();
    let support = out
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
        })
        .unwrap_or_default();
    support.lines().any(|l| l.trim() == "=== TLS supported")
        || missing(
            "swaks with TLS",
            &format!(
                "swaks cannot do TLS, Net::SSLeay is missing (Debian package \
                 libnet-ssleay-perl); `swaks --support` said {:?}",
                support
                    .lines()
                    .find(|l| l.contains("TLS"))
                    .unwrap_or("nothing")
            ),
        )
}

/// A python3 that can import `module`: Debian's `/usr/bin/python3` first (where `.ci/run`
/// installs `package`), then the one on PATH; `None` (skip or failure) when neither can.
pub fn python_with(module: &str, package: &str) -> Option<String> {
    for python in ["/usr/bin/python3", "python3"] {
        let imported = Command::new(python)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if imported {
            return Some(python.to_string());
        }
    }
    missing(
        &format!("python3 with {module}"),
        &format!(
            "neither /usr/bin/python3 nor python3 on PATH imports it (Debian package {package})"
        ),
    );
    None
}

/// The bounce corpus directory (`$HERALD_CORPUS`, else `../shared/corpus/bounces` beside the
/// crate), which holds `public/`; `None` (skip or failure) when it is not there.
pub fn corpus() -> Option<PathBuf> {
    let dir = match std::env::var_os(CORPUS) {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/bounces"),
    };
    if dir.join("public").is_dir() {
        return Some(dir);
    }
    missing(
        "the bounce corpus",
        &format!(
            "no public/ in {} (set {CORPUS} to the corpus's bounces directory)",
            dir.display()
        ),
    );
    None
}

/// Runs test `name` of this test binary again, alone, with `env` set (`None` removes a
/// variable): for tests of what a skip path does.
pub fn rerun(name: &str, env: &[(&str, Option<&str>)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.output().expect("rerun the test binary")
}

/// Test `name`, rerun with `env`, fails saying `what` is missing (and `hint`, e.g. the
/// package) under `HERALD_REQUIRE_TOOLS=1`, and passes with a SKIP note saying so without it.
pub fn assert_fails_only_when_required(
    name: &str,
    env: &[(&str, Option<&str>)],
    what: &str,
    hint: &str,
) {
    let run = |require: Option<&str>| {
        let mut all = env.to_vec();
        all.push((REQUIRE, require));
        let out = rerun(name, &all);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (passed, text) = run(Some("1"));
    assert!(
        !passed
            && text.contains(&format!("{REQUIRE}=1 and {what} is missing"))
            && text.contains(hint),
        "with {REQUIRE}=1, {name} must fail saying {what} is missing ({hint}):\n{text}"
    );
    let (passed, text) = run(None);
    assert!(
        passed && text.contains(&format!("SKIP: {what} is missing")) && text.contains(hint),
        "without {REQUIRE}, {name} must pass with a SKIP note for {what} ({hint}):\n{text}"
    );
}
