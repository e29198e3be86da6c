//! The `keel` binary as a user runs it: a real subprocess, real ports, real signals.

mod cli;
mod config_registration;
mod ctl;
mod dashboard_browser;
mod demo_config;
mod gateway_redis;
mod gateway_registration;
mod gateway_tls_admin;
mod sdk;
mod standalone;
mod tidy;

use std::path::{Path, PathBuf};

pub fn keel() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_keel"))
}

/// A fresh data directory under the target dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "keel-it-{name}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn str(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
