//! nginx from Debian as the benchmark's fixed backend and as the peer reverse proxy.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running nginx master (workers are its children). Stopped on drop.
pub struct Nginx {
    child: Child,
    pub port: u16,
}

/// The body the backend serves: 1 KiB.
pub const BODY_BYTES: usize = 1024;

fn common_head(dir: &Path, name: &str, workers: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes {workers};\nuser root;\npid {d}/{name}.pid;\nerror_log {d}/{name}-error.log warn;\n\
         daemon off;\nevents {{ worker_connections 4096; }}\n"
    )
}

fn temp_paths(dir: &Path, name: &str) -> String {
    let d = dir.display();
    ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("  {t}_temp_path {d}/{name}-{t};\n"))
        .collect()
}

/// The fixed backend: one worker, no access log, a static 1 KiB file.
pub fn backend_config(dir: &Path, port: u16) -> anyhow::Result<PathBuf> {
    let root = dir.join("www");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("index.html"), vec![b'k'; BODY_BYTES])?;
    let conf = format!(
        "{}http {{\n{}  access_log off;\n  keepalive_requests 1000000;\n  server {{\n    listen 127.0.0.1:{port} reuseport;\n    \
         root {};\n    location / {{ try_files /index.html =404; }}\n  }}\n}}\n",
        common_head(dir, "backend", "1"),
        temp_paths(dir, "backend"),
        root.display()
    );
    let path = dir.join("backend.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// The peer: a reverse proxy with a keep-alive upstream, `worker_processes auto`, access log on.
pub fn proxy_config(dir: &Path, port: u16, backend: u16) -> anyhow::Result<PathBuf> {
    let d = dir.display();
    let conf = format!(
        "{}http {{\n{}  access_log {d}/nginx-access.log combined buffer=64k flush=1s;\n  keepalive_requests 1000000;\n  \
         upstream backend {{ server 127.0.0.1:{backend}; keepalive 128; keepalive_requests 1000000; }}\n  \
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://backend;\n      \
         proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n      \
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }}\n  }}\n}}\n",
        common_head(dir, "proxy", "auto"),
        temp_paths(dir, "proxy"),
    );
    let path = dir.join("proxy.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}

impl Nginx {
    /// Starts nginx with `conf` and waits until `port` accepts connections.
    pub fn start(conf: &Path, port: u16) -> anyhow::Result<Self> {
        let prefix = conf.parent().context("config has a directory")?;
        // In a session of its own, as a service runs (and as the Keel it is compared with runs:
        // `KeelProcess::start_own_session`); `setsid` execs in place, so the pid is nginx's master.
        let child = Command::new("setsid")
            .arg(nginx_binary())
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn nginx")?;
        let nginx = Nginx { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("nginx on port {port} never accepted connections");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    /// The master's pid; CPU is summed over it and its workers.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM is nginx's fast shutdown; the master reaps its workers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}
