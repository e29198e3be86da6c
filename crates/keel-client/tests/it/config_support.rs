//! Fixtures for the config client tests: temporary git repositories driven by the git CLI, the
//! real keel config server on 127.0.0.1:0, and a TCP proxy whose connections can be cut.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_config::{Backend, ConfigServer, ConfigServerConfig};
use keel_server::{
    Common, HealthRegistry, HttpLimits, HttpMetrics, MetricsRegistry, Shutdown, ShutdownConfig,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A git repository with a worktree on branch `main`.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Self {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Test"]);
        repo.git(&["config", "user.email", "test@example.com"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
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
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Writes the files, commits them and returns the commit id.
    pub fn commit(&self, files: &[(&str, &str)]) -> String {
        for (path, content) in files {
            std::fs::write(self.path().join(path), content).unwrap();
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", "change"]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// The real config server on 127.0.0.1:0, refreshed by webhooks only.
pub struct ConfigNode {
    pub addr: SocketAddr,
    shutdown: Shutdown,
    task: JoinHandle<()>,
    _basedir: tempfile::TempDir,
}

impl ConfigNode {
    pub async fn start(repo: &Repo) -> Self {
        let basedir = tempfile::tempdir().unwrap();
        let mut config = ConfigServerConfig::new(Backend::Git {
            uri: repo.path().display().to_string(),
            basedir: basedir.path().to_owned(),
        });
        config.refresh_interval = Duration::ZERO;
        config.debounce = Duration::from_millis(20);
        let shutdown = Shutdown::new(ShutdownConfig {
            drain_timeout: Duration::from_millis(500),
            ..ShutdownConfig::default()
        });
        let health = HealthRegistry::new();
        let server = ConfigServer::start(config, &health, &shutdown)
            .await
            .unwrap();
        let mut prometheus = prometheus_client::registry::Registry::default();
        let common = Common {
            shutdown: shutdown.clone(),
            health,
            http_metrics: HttpMetrics::new(&mut prometheus),
            metrics: MetricsRegistry::new(prometheus),
            limits: HttpLimits::default(),
        };
        let listener = keel_server::bind("config", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr;
        let app = keel_server::app("config", keel_config::router(server), &common);
        let task = tokio::spawn(async move { keel_server::serve(listener, app, &common).await });
        Self {
            addr,
            shutdown,
            task,
            _basedir: basedir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The push webhook Keel's post-receive hook sends.
    pub async fn webhook(&self) {
        let r = keel_test_support::http(
            self.addr,
            "POST",
            "/monitor",
            &[("Content-Type", "application/json")],
            br#"{"path":"application.yml"}"#,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// Ends streams and stops listening.
    pub async fn stop(self) {
        self.shutdown.begin().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// A TCP proxy in front of `target`: [`Proxy::cut`] drops every open connection and refuses
/// new ones until [`Proxy::restore`].
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<(bool, Vec<JoinHandle<()>>)>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<(bool, Vec<JoinHandle<()>>)>> = Arc::default();
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut guard = shared.lock().unwrap();
                if guard.0 {
                    continue;
                }
                guard.1.push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn cut(&self) {
        let mut guard = self.state.lock().unwrap();
        guard.0 = true;
        for task in guard.1.drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.state.lock().unwrap().0 = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
