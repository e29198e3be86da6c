//! Test harness: runs `keel` as a real subprocess and finds its ports from its `listening on` lines.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running `keel` process. Killed on drop if it is still running.
pub struct KeelProcess {
    child: Child,
    addrs: HashMap<String, SocketAddr>,
    lines: Arc<Mutex<Vec<String>>>,
}

/// Extracts `(component, addr)` from a log line containing `<component> listening on http://<addr>`.
pub fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    let idx = line.find(" listening on http://")?;
    let component = line[..idx].rsplit([' ', '"']).next()?.to_owned();
    let rest = &line[idx + " listening on http://".len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    Some((component, rest[..end].parse().ok()?))
}

impl KeelProcess {
    /// Starts `bin args…` with `env`, and waits (up to 60 s) until every component in `expect`
    /// has logged its listening line. Panics with the captured output otherwise.
    pub fn start(bin: &Path, args: &[&str], env: &[(&str, &str)], expect: &[&str]) -> Self {
        Self::spawn(Command::new(bin), args, env, expect)
    }

    /// [`start`](Self::start) in a session of its own (through util-linux's `setsid`, which execs
    /// in place, so [`pid`](Self::pid) is still keel's), as a service manager or a daemonising
    /// server such as nginx runs it. With the kernel's autogroup scheduling, a session is a CPU-share
    /// group: a benchmark's server in the load generator's session would share the generator's
    /// share, while the peer it is compared with has its own.
    pub fn start_own_session(
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        expect: &[&str],
    ) -> Self {
        let mut cmd = Command::new("setsid");
        cmd.arg(bin);
        Self::spawn(cmd, args, env, expect)
    }

    fn spawn(mut cmd: Command, args: &[&str], env: &[(&str, &str)], expect: &[&str]) -> Self {
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG");
        // keel refuses unknown KEEL_* variables; the child sees only the ones a test passes.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("KEEL_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn keel");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let mut process = KeelProcess {
            child,
            addrs: HashMap::new(),
            lines,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for line in process.lines.lock().unwrap().iter() {
                if let Some((component, addr)) = parse_listening(line) {
                    process.addrs.insert(component, addr);
                }
            }
            if expect.iter().all(|c| process.addrs.contains_key(*c)) {
                return process;
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "keel exited with {status} before listening:\n{}",
                    process.output()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "keel did not log listening lines for {expect:?}:\n{}",
                    process.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address a component announced. The host is rewritten to 127.0.0.1 when it bound 0.0.0.0.
    pub fn addr(&self, component: &str) -> SocketAddr {
        let mut addr = *self
            .addrs
            .get(component)
            .unwrap_or_else(|| panic!("no listening line for {component}"));
        if addr.ip().is_unspecified() {
            addr.set_ip([127, 0, 0, 1].into());
        }
        addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for KeelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends one request with `Connection: close` and reads the whole response.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    stream.write_all(body).await?;
    read_response(&mut stream).await
}

/// Reads a full response from a connection the server will close.
pub async fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    Ok(Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// `GET path`, returning the response.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    http(addr, "GET", path, &[], b"").await
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Python interpreter that has the pinned client libraries (`xtask/python-requirements.txt`):
/// `$KEELTEST_PYTHON` when set (the CI command sets it), else `<workspace>/target/venv/bin/python`,
/// created on first use exactly as `cargo xtask ci` creates it. A file lock keeps concurrent
/// test processes from building the venv twice. Panics with the reason when it cannot.
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("KEELTEST_PYTHON") {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join("target/venv");
    let python = venv.join("bin/python");
    let requirements = root.join("xtask/python-requirements.txt");
    let marker = venv.join(".keel-requirements");
    let wanted =
        std::fs::read_to_string(&requirements).expect("read xtask/python-requirements.txt");
    std::fs::create_dir_all(root.join("target")).expect("create target/");
    let lock =
        std::fs::File::create(root.join("target/venv.lock")).expect("create target/venv.lock");
    lock.lock().expect("lock target/venv.lock");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let system = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .expect("no python3 on PATH: the tests drive the real Python client libraries");
    let ok = Command::new(system)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "python3 -m venv {} failed", venv.display());
    let ok = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "pip install -r {} failed", requirements.display());
    std::fs::write(&marker, wanted).expect("write venv marker");
    python
}
