//! Offline checks of the deployment files: deploy/k8s/ against Kubernetes' schemas with
//! `kubernetes-validate` (from the test venv), and the Compose and Swarm files parsed by Compose.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

#[test]
fn kubernetes_manifests_validate_strictly() {
    let python = keel_test_support::python();
    let manifests: Vec<PathBuf> = std::fs::read_dir(deploy().join("k8s"))
        .expect("deploy/k8s")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(
        manifests.len() >= 5,
        "expected the k8s manifests, found {manifests:?}"
    );
    let out = Command::new(&python)
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--kubernetes-version",
            "1.31.0",
        ])
        .args(&manifests)
        .output()
        .expect("run kubernetes-validate");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubernetes-validate failed:\n{report}"
    );
    for kind in [
        "statefulset/registry",
        "service/registry-peers",
        "deployment/gateway",
    ] {
        assert!(report.contains(kind), "{kind} not validated:\n{report}");
    }
    // The registry's peers come from a headless Service, published before pods are ready.
    let registry = std::fs::read_to_string(deploy().join("k8s/registry.yaml")).unwrap();
    assert!(
        registry.contains("clusterIP: None") && registry.contains("publishNotReadyAddresses: true")
    );
    assert!(registry.contains("--peers-dns"));
}

#[test]
fn compose_files_parse() {
    let Ok(version) = Command::new("docker-compose").arg("version").output() else {
        eprintln!("SKIP: docker-compose is not installed");
        return;
    };
    assert!(version.status.success());
    for file in ["compose.yaml", "stack.yaml"] {
        let out = Command::new("docker-compose")
            .arg("-f")
            .arg(deploy().join(file))
            .args(["config", "--quiet"])
            .output()
            .expect("run docker-compose config");
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
