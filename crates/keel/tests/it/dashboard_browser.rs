//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver's
//! HTTP API, spoken directly), against `keel standalone` with demo services.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`cargo xtask ci` installs them). Without
//! them the test says so and passes, unless `KEELTEST_REQUIRE_BROWSER=1` (set by `cargo xtask ci`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keel_test_support::{KeelProcess, eventually, get};
use serde_json::{Value, json};

use crate::sdk::start_demo;
use crate::{TempDir, keel};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver process and one browser session; both end on drop.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // chromedriver keeps connections alive, so a real HTTP client (with a timeout) is used.
        let status = keel_dashboard::Transport::http(
            &format!("http://{addr}"),
            keel_dashboard::Credentials::default(),
            Duration::from_secs(5),
        )
        .unwrap();
        eventually(
            Duration::from_secs(20),
            "chromedriver to listen",
            || async { status.get("/status").await.ok().filter(|r| r.status == 200) },
        )
        .await;
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
        };
        // Root in a container: no sandbox; /dev/shm is small there.
        let created = browser
            .call(
                "POST",
                "/session",
                json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                             "--window-size=1366,768", "--lang=en-GB"]}}}}),
            )
            .await;
        browser.session = created["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        // chromedriver keeps connections alive, so a real HTTP client (with a timeout) is used.
        let client = keel_dashboard::Transport::http(
            &format!("http://{}", self.addr),
            keel_dashboard::Credentials::default(),
            Duration::from_secs(60),
        )
        .unwrap();
        let method: http::Method = method.parse().unwrap();
        let answer = client
            .send(
                method.clone(),
                path,
                Some("application/json"),
                bytes::Bytes::from(body.to_string()),
            )
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let v: Value = serde_json::from_slice(&answer.body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {:?}", answer.body));
        assert!(answer.status.as_u16() < 400, "{method} {path}: {v}");
        v["value"].clone()
    }

    async fn session(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body).await
    }

    async fn goto(&self, url: &str) {
        self.session("POST", "/url", json!({"url": url})).await;
    }

    async fn js(&self, script: &str) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .session(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.session("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// Types into the focused element (keyboard-only use).
    async fn keys(&self, text: &str) {
        let actions: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.session(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
    }

    async fn screenshot(&self, path: &Path) {
        let b64 = self.session("GET", "/screenshot", json!({})).await;
        let png = base64_decode(b64.as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !matches!(c, b'=' | b'\n' | b'\r'))
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| {
            acc | (u32::from(value(c)) << (18 - 6 * i))
        });
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/artifacts")
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "browser-test")
        .env("GIT_AUTHOR_EMAIL", "browser@test")
        .env("GIT_COMMITTER_NAME", "browser-test")
        .env("GIT_COMMITTER_EMAIL", "browser@test")
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

fn callee_id(p: &KeelProcess) -> String {
    format!("127.0.0.1:demo-callee:{}", p.addr("demo-callee").port())
}

async fn instance_ids(browser: &Browser) -> Vec<String> {
    let v = browser
        .js("return [...document.querySelectorAll('[data-instance-id]')].map(e => e.dataset.instanceId)")
        .await;
    serde_json::from_value(v).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_the_platform_live() {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var_os("KEELTEST_REQUIRE_BROWSER").is_none(),
            "KEELTEST_REQUIRE_BROWSER is set but {CHROMEDRIVER} or {CHROMIUM} is missing"
        );
        eprintln!("skipped: install Debian's chromium and chromium-driver to run the browser test");
        return;
    }
    let data = TempDir::new("browser");
    let data_dir = data.str();
    let keel = KeelProcess::start(
        keel(),
        &[
            "standalone",
            "--registry-bind",
            "127.0.0.1:0",
            "--config-bind",
            "127.0.0.1:0",
            "--gateway-bind",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
            "--refresh-interval",
            "1s",
        ],
        &[],
        &["registry", "config", "gateway"],
    );
    let registry = keel.addr("registry");
    let eureka = format!("http://{registry}/eureka/");
    let leaving = start_demo("demo-callee", &eureka, &["--renewal-secs", "1"]);
    let crashing = start_demo("demo-callee", &eureka, &["--renewal-secs", "1"]);
    let caller = start_demo("demo-caller", &eureka, &["--renewal-secs", "1"]);
    let (leaving_id, crashing_id) = (callee_id(&leaving), callee_id(&crashing));

    let browser = Browser::start().await;
    browser.goto(&format!("http://{registry}/")).await;

    // Both instances are listed.
    eventually(
        Duration::from_secs(30),
        "both callees on the page",
        || async {
            let ids = instance_ids(&browser).await;
            (ids.contains(&leaving_id) && ids.contains(&crashing_id)).then_some(())
        },
    )
    .await;
    browser
        .screenshot(&artifacts().join("dashboard-registry.png"))
        .await;

    // Out of service from the page (a real click: session cookie, CSRF token, Origin), and back.
    let button = format!("[data-key=\"status:DEMO-CALLEE/{crashing_id}\"]");
    browser.click(&button).await;
    let status_of = |id: String| {
        let browser = &browser;
        async move {
            browser
                .js(&format!(
                    "const r = document.querySelector('[data-instance-id=\"{id}\"] .badge'); return r && r.textContent"
                ))
                .await
        }
    };
    eventually(
        Duration::from_secs(15),
        "OUT_OF_SERVICE on the page",
        || async { (status_of(crashing_id.clone()).await == "OUT_OF_SERVICE").then_some(()) },
    )
    .await;
    browser.click(&button).await;
    eventually(Duration::from_secs(15), "UP again on the page", || async {
        (status_of(crashing_id.clone()).await == "UP").then_some(())
    })
    .await;

    // A graceful stop: the instance leaves the open page without a reload.
    browser.js("window.__noReload = true").await;
    leaving.sigterm();
    eventually(
        Duration::from_secs(30),
        "the stopped instance to disappear",
        || async {
            let ids = instance_ids(&browser).await;
            (!ids.contains(&leaving_id) && ids.contains(&crashing_id)).then_some(())
        },
    )
    .await;
    assert_eq!(
        browser.js("return window.__noReload === true").await,
        true,
        "the page reloaded"
    );

    // A crash the registry has not noticed yet: the caller's calls fail and its breaker opens.
    let _ = Command::new("kill")
        .args(["-KILL", &crashing.pid().to_string()])
        .status();
    // Keyboard: `2` opens the Traffic view.
    browser.js("document.activeElement.blur()").await;
    browser.keys("2").await;
    let caller_addr = caller.addr("demo-caller");
    eventually(Duration::from_secs(60), "a breaker shown as OPEN", || async {
        for _ in 0..10 {
            let _ = get(caller_addr, "/call").await;
        }
        let open = browser
            .js("return [...document.querySelectorAll('#traffic [data-breaker] .badge')].some(b => b.textContent === 'OPEN') && !document.getElementById('traffic').hidden")
            .await;
        (open == true).then_some(())
    })
    .await;
    browser
        .screenshot(&artifacts().join("dashboard-traffic.png"))
        .await;

    // A config commit shows up in the history of the open page.
    let work = data.path().join("work");
    git(
        data.path(),
        &[
            "clone",
            "-q",
            &data.path().join("config-repo.git").display().to_string(),
            "work",
        ],
    );
    let shared = work.join("application.yml");
    let mut text = std::fs::read_to_string(&shared).unwrap();
    text.push_str("\nbrowser:\n  test: true\n");
    std::fs::write(&shared, text).unwrap();
    git(&work, &["commit", "-q", "-am", "Browser test commit"]);
    git(&work, &["push", "-q", "origin", "HEAD"]);
    browser.keys("3").await;
    eventually(Duration::from_secs(30), "the commit in the page's history", || async {
        let found = browser
            .js("return [...document.querySelectorAll('#config-history [data-commit] .msg')].some(m => m.textContent === 'Browser test commit')")
            .await;
        (found == true).then_some(())
    })
    .await;
    browser
        .screenshot(&artifacts().join("dashboard-config.png"))
        .await;
    browser.screenshot(&artifacts().join("dashboard.png")).await;
    assert_eq!(
        browser.js("return window.__noReload === true").await,
        true,
        "the page reloaded"
    );
    let _ = browser.session("DELETE", "", json!({})).await;
}
