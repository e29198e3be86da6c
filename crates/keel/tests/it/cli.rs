//! Flags, environment and config file: precedence, and refusal of bad values naming the key.

use std::process::Command;

use crate::{TempDir, keel};

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(keel());
    cmd.args(args).env_remove("KEELTEST_PYTHON");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_bad_flag_value_is_refused_naming_the_key_and_flag() {
    let (code, out) = run(&["registry", "--bind", "not-an-address"], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("`registry.bind`"), "{out}");
    assert!(out.contains("flag --bind"), "{out}");
    assert!(!out.contains("listening on"), "{out}");
}

#[test]
fn a_bad_environment_value_is_refused_naming_the_key_and_variable() {
    let (code, out) = run(&["gateway"], &[("KEEL_SHUTDOWN_DRAIN_TIMEOUT", "soon")]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("`shutdown.drain-timeout`"), "{out}");
    assert!(
        out.contains("environment variable KEEL_SHUTDOWN_DRAIN_TIMEOUT"),
        "{out}"
    );

    let (code, out) = run(&["gateway"], &[("KEEL_GATEWAY_BIDN", "127.0.0.1:0")]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("unknown environment variable KEEL_GATEWAY_BIDN"),
        "{out}"
    );
}

#[test]
fn a_bad_file_value_or_unknown_key_is_refused_naming_the_key_and_file() {
    let dir = TempDir::new("settings");
    let file = dir.path().join("keel.yaml");
    std::fs::write(&file, "http:\n  max-body-bytes: lots\n").unwrap();
    let file_str = file.display().to_string();
    let (code, out) = run(&["--config", &file_str, "config"], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("`http.max-body-bytes`"), "{out}");
    assert!(out.contains(&format!("config file {file_str}")), "{out}");

    std::fs::write(&file, "registry:\n  bnid: 127.0.0.1:0\n").unwrap();
    let (code, out) = run(&["--config", &file_str, "registry"], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown setting `registry.bnid`"), "{out}");
}

#[test]
fn flags_beat_environment_which_beats_the_file() {
    let dir = TempDir::new("precedence");
    let file = dir.path().join("keel.yaml");
    // The file says json; the environment overrides it with a bad value; the flag fixes it.
    std::fs::write(&file, "log:\n  format: json\nregistry:\n  bind: nonsense\n").unwrap();
    let file_str = file.display().to_string();
    let (code, out) = run(
        &["--config", &file_str, "registry"],
        &[("KEEL_REGISTRY_BIND", "also-nonsense")],
    );
    assert_eq!(code, 2);
    assert!(
        out.contains("environment variable KEEL_REGISTRY_BIND"),
        "{out}"
    );
    let (code, out) = run(
        &[
            "--config",
            &file_str,
            "--log-format",
            "yaml",
            "registry",
            "--bind",
            "127.0.0.1:0",
        ],
        &[("KEEL_REGISTRY_BIND", "also-nonsense")],
    );
    assert_eq!(code, 2);
    assert!(
        out.contains("`log.format` (from flag --log-format)"),
        "{out}"
    );
}

#[test]
fn help_describes_every_subcommand() {
    let (code, out) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for sub in [
        "standalone",
        "registry",
        "config",
        "gateway",
        "health",
        "ctl",
    ] {
        assert!(out.contains(sub), "{out}");
        let (code, help) = run(&[sub, "--help"], &[]);
        assert_eq!(code, 0, "{sub}: {help}");
        assert!(help.contains("Usage: keel"), "{sub}: {help}");
    }
}

#[test]
fn health_exits_nonzero_when_nothing_listens() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (code, out) = run(&["health", &format!("http://{addr}")], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot reach"), "{out}");
}

#[test]
fn upstream_tls_settings_that_cannot_work_stop_the_gateway() {
    let (code, out) = run(
        &["gateway", "--bind", "127.0.0.1:0"],
        &[(
            "KEEL_GATEWAY_UPSTREAM_CLIENT_CERT",
            "/nonexistent/client.pem",
        )],
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(
            "`gateway.upstream-client-cert` and `gateway.upstream-client-key` go together"
        ),
        "{out}"
    );
    assert!(!out.contains("listening on"), "{out}");

    let (code, out) = run(
        &["gateway", "--bind", "127.0.0.1:0"],
        &[("KEEL_GATEWAY_UPSTREAM_TRUSTED_CA", "/nonexistent/ca.pem")],
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("/nonexistent/ca.pem"), "{out}");
    assert!(!out.contains("gateway listening on"), "{out}");
}
