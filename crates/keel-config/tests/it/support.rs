//! Test fixtures: temporary git repositories driven by the git CLI, and in-process config
//! servers on 127.0.0.1:0.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keel_config::{Backend, ConfigServer, ConfigServerConfig};
use keel_server::{
    Common, HealthRegistry, HttpLimits, HttpMetrics, MetricsRegistry, Shutdown, ShutdownConfig,
};

/// A git repository with a worktree, on branch `main`, in a temporary directory.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Test"]);
        repo.git(&["config", "user.email", "test@example.com"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn uri(&self) -> String {
        self.path().display().to_string()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.path())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn write(&self, path: &str, content: &str) {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }

    /// Writes the files, commits them and returns the commit id.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            self.write(path, content);
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// A config server serving on 127.0.0.1:0 in this process.
pub struct Server {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub health: HealthRegistry,
    pub basedir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn git(repo: &Repo, tweak: impl FnOnce(&mut ConfigServerConfig)) -> Server {
        let basedir = tempfile::tempdir().unwrap();
        let mut config = ConfigServerConfig::new(Backend::Git {
            uri: repo.uri(),
            basedir: basedir.path().to_owned(),
        });
        // No timer: tests drive refreshes through webhooks, so every change is caused.
        config.refresh_interval = Duration::ZERO;
        config.debounce = Duration::from_millis(20);
        tweak(&mut config);
        Self::start(config, basedir).await
    }

    pub async fn start(config: ConfigServerConfig, basedir: tempfile::TempDir) -> Server {
        let shutdown = Shutdown::new(ShutdownConfig {
            drain_timeout: Duration::from_secs(2),
            ..ShutdownConfig::default()
        });
        let health = HealthRegistry::new();
        let server = ConfigServer::start(config, &health, &shutdown)
            .await
            .expect("start config server");
        let mut prometheus = prometheus_client::registry::Registry::default();
        let common = Common {
            shutdown: shutdown.clone(),
            health: health.clone(),
            metrics: MetricsRegistry::new(prometheus_client::registry::Registry::default()),
            http_metrics: HttpMetrics::new(&mut prometheus),
            limits: HttpLimits::default(),
        };
        let listener = keel_server::bind("config", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr;
        let app = keel_server::app("config", keel_config::router(server.clone()), &common);
        let task = tokio::spawn(async move { keel_server::serve(listener, app, &common).await });
        Server {
            addr,
            shutdown,
            health,
            basedir,
            task,
        }
    }

    pub async fn get(&self, path: &str) -> keel_test_support::Response {
        keel_test_support::get(self.addr, path).await.unwrap()
    }

    pub async fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> keel_test_support::Response {
        keel_test_support::http(self.addr, "GET", path, headers, b"")
            .await
            .unwrap()
    }

    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> keel_test_support::Response {
        keel_test_support::http(self.addr, "POST", path, headers, body)
            .await
            .unwrap()
    }

    /// The body of a 200 GET, parsed as JSON.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.body))
    }

    /// Sends the generic webhook Keel's post-receive hook sends.
    pub async fn webhook(&self) {
        let r = self
            .post(
                "/monitor",
                &[("Content-Type", "application/json")],
                br#"{"path":"application.yml"}"#,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    pub async fn stop(self) {
        self.shutdown.begin().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// The value of `key` as a client sees it: the first property source that has it.
pub fn value<'a>(env: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    env["propertySources"]
        .as_array()?
        .iter()
        .find_map(|ps| ps["source"].get(key))
}

/// Replaces commit ids and temp paths so snapshots are stable.
pub fn insta_settings(repo: &Repo, basedir: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(&repo.uri()), "[repo]");
    s.add_filter(&regex_escape(&basedir.display().to_string()), "[basedir]");
    s.add_filter(r"\b[0-9a-f]{40}\b", "[commit]");
    s.add_filter(r"\[basedir\]/[^/' ]+\.git", "[mirror]");
    s.set_prepend_module_to_snapshot(false);
    s
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
