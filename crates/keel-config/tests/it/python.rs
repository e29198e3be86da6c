//! The real Python `config-client` (PyPI 1.5.0) against a temporary git repository on `main`.
//! The client always sends its default label `master` and has fail-fast on.

use std::process::Command;

use crate::fixture;
use crate::support::Server;

const SCRIPT: &str = r#"
import json, sys
from config.spring import ConfigClient
client = ConfigClient(app_name=sys.argv[1], profile=sys.argv[2])
client.get_config()
out = {
    "url": client.url,
    "name": client.get("foo.name"),
    "count": client.get("foo.count"),
    "answer": client.get("foo.answer"),
    "owner": client.get("info.owner"),
    "servers": client.get("servers"),
    "password": client.get("secret.password"),
    "file": client.get_file("nginx.conf"),
}
if len(sys.argv) > 3:
    ct = client.encrypt(sys.argv[3])
    out["roundtrip"] = client.decrypt(ct)
print(json.dumps(out))
"#;

fn run(server: &Server, args: &[&str]) -> serde_json::Value {
    let python = keel_test_support::python();
    let out = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .args(args)
        .env("CONFIGSERVER_ADDRESS", format!("http://{}", server.addr))
        .env_remove("LABEL")
        .env_remove("CONFIG_FAIL_FAST")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "python config-client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_config_client_reads_merged_config_with_its_master_label() {
    let repo = fixture::repo();
    let server = Server::git(&repo, |c| c.encrypt_key = Some("foo".into())).await;
    let addr = server.addr;
    let s = &server;
    let got = tokio::task::block_in_place(|| run(s, &["foo", "dev", "héllo wörld"]));
    assert_eq!(got["url"], format!("http://{addr}/foo/dev/master"));
    assert_eq!(got["name"], "Foo Dev");
    assert_eq!(got["count"], "5");
    assert_eq!(got["answer"], true);
    assert_eq!(got["owner"], "platform team");
    assert_eq!(
        got["servers"],
        serde_json::json!(["a.example.com", "b.example.com"])
    );
    assert_eq!(got["file"], "server_name dev;\n");
    assert_eq!(got["roundtrip"], "héllo wörld");

    // An application with no file of its own still starts (fail-fast is on): it gets the
    // shared sources.
    let ghost = tokio::task::block_in_place(|| run(s, &["ghost", "default"]));
    assert_eq!(ghost["owner"], "platform team");
    assert_eq!(ghost["name"], "");
    let secret = tokio::task::block_in_place(|| run(s, &["secret", "default"]));
    assert_eq!(secret["password"], "foo");
    server.stop().await;
}
