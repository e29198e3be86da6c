//! Registry load benchmark: `keel registry` driven over keep-alive HTTP/1.1 from this separate
//! process, against a trivial hyper handler (the machine's ceiling) measured in the same run.
//!
//! Reports medians over rounds: renewals/s with 100k instances (absolute and vs the trivial
//! handler), RSS with 100k instances, `GET /apps` (JSON) latency with 10k instances, and the
//! time from a cancel to a watcher seeing it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use keel_bench::{keel_binary, median, quantile, rss_kib};
use keel_test_support::KeelProcess;

const ROUNDS: usize = 3;
const CONNECTIONS: usize = 64;
const ROUND: Duration = Duration::from_secs(4);
const APPS: usize = 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--trivial-server") {
        return trivial_server().await;
    }
    let trivial = KeelProcess::start(
        &std::env::current_exe()?,
        &["--trivial-server"],
        &[],
        &["trivial"],
    );
    let keel = start_registry();
    let addr = keel.addr("registry");

    // 100k instances, registered over HTTP like clients do.
    let started = Instant::now();
    let registered = register_all(addr, 100_000, CONNECTIONS).await?;
    let reg_s = started.elapsed().as_secs_f64();
    println!(
        "registered {registered} instances in {reg_s:.1} s ({:.0}/s)",
        registered as f64 / reg_s
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_100k = rss_kib(keel.pid()).unwrap_or(0) as f64 / 1024.0;

    let mut keel_rates = Vec::new();
    let mut trivial_rates = Vec::new();
    for round in 0..ROUNDS {
        let k = hammer(addr, CONNECTIONS, ROUND, Arc::new(renew_request)).await?;
        let t = hammer(
            trivial.addr("trivial"),
            CONNECTIONS,
            ROUND,
            Arc::new(renew_request),
        )
        .await?;
        println!("round {round}: renewals {k:>8.0}/s   trivial handler {t:>8.0}/s");
        keel_rates.push(k);
        trivial_rates.push(t);
    }
    let rss_after = rss_kib(keel.pid()).unwrap_or(0) as f64 / 1024.0;
    drop(keel);

    // A fresh node with 10k instances for the read and watch figures.
    let keel = start_registry();
    let addr = keel.addr("registry");
    register_all(addr, 10_000, CONNECTIONS).await?;
    let (stable, changed, gzip) = get_apps_latency(addr).await?;
    let cancel = cancel_to_watcher(addr).await?;
    drop(keel);

    let (k, t) = (median(&mut keel_rates), median(&mut trivial_rates));
    println!();
    println!(
        "renewals/s with 100k instances: median {k:.0}/s, {:.2}x the trivial handler ({t:.0}/s) (goal >= 50k/s or >= 0.7x)",
        k / t
    );
    println!(
        "RSS with 100k instances: {rss_100k:.1} MiB after registration, {rss_after:.1} MiB after the renewal rounds (goal <= 150 MB)"
    );
    println!(
        "GET /apps JSON, 10k instances (medians over rounds): unchanged registry p50 {:.2} ms p99 {:.2} ms; after a write each time p50 {:.2} ms p99 {:.2} ms (goal p99 <= 20 ms)",
        stable.full.0, stable.full.1, changed.full.0, changed.full.1
    );
    println!(
        "  of which to the response head: unchanged p50 {:.2} ms p99 {:.2} ms; after a write p50 {:.2} ms p99 {:.2} ms",
        stable.head.0, stable.head.1, changed.head.0, changed.head.1
    );
    println!(
        "  gzipped (Accept-Encoding: gzip, as Eureka's Java client sends), unchanged registry: p50 {:.2} ms p99 {:.2} ms",
        gzip.full.0, gzip.full.1
    );
    println!(
        "cancel -> watcher sees delete: p50 {:.2} ms p99 {:.2} ms (goal p99 < 50 ms)",
        cancel.0, cancel.1
    );
    Ok(())
}

fn start_registry() -> KeelProcess {
    KeelProcess::start(
        &keel_binary(),
        &["registry", "--bind", "127.0.0.1:0"],
        &[],
        &["registry"],
    )
}

fn app_of(n: usize) -> String {
    format!("BENCH-{}", n % APPS)
}

fn id_of(n: usize) -> String {
    format!(
        "10.{}.{}.{}:bench-{}:8080",
        n >> 16 & 255,
        n >> 8 & 255,
        n & 255,
        n % APPS
    )
}

fn instance_json(app: &str, id: &str) -> String {
    format!(
        r#"{{"instance":{{"instanceId":"{id}","hostName":"{id}","app":"{app}","ipAddr":"10.0.0.1","status":"UP","port":{{"$":8080,"@enabled":"true"}},"securePort":{{"$":443,"@enabled":"false"}},"dataCenterInfo":{{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"}},"leaseInfo":{{"renewalIntervalInSecs":30,"durationInSecs":600}},"vipAddress":"{vip}","metadata":{{"zone":"z1"}}}}}}"#,
        vip = app.to_lowercase()
    )
}

/// One keep-alive connection.
async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (send, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}

async fn exchange(
    conn: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    conn.ready().await?;
    let resp = conn.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn request(method: Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "bench")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Full::new(body))
        .expect("static request parts are valid")
}

async fn register_all(addr: SocketAddr, n: usize, conns: usize) -> anyhow::Result<usize> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return anyhow::Ok(());
                }
                let (app, id) = (app_of(i), id_of(i));
                let body = Bytes::from(instance_json(&app, &id));
                let (status, _) = exchange(
                    &mut conn,
                    request(Method::POST, &format!("/eureka/apps/{app}"), body),
                )
                .await?;
                anyhow::ensure!(
                    status == StatusCode::NO_CONTENT,
                    "register answered {status}"
                );
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n)
}

fn renew_request(rng: u64) -> Request<Full<Bytes>> {
    let i = (rng % 100_000) as usize;
    request(
        Method::PUT,
        &format!("/eureka/apps/{}/{}", app_of(i), id_of(i)),
        Bytes::new(),
    )
}

type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// Requests/s over `conns` keep-alive connections for `duration`; every answer must be 200.
async fn hammer(
    addr: SocketAddr,
    conns: usize,
    duration: Duration,
    make: MakeRequest,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (done, make) = (done.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(addr).await?;
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1);
            while Instant::now() < deadline {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let (status, _) = exchange(&mut conn, make(rng)).await?;
                anyhow::ensure!(status == StatusCode::OK, "answered {status}");
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Latency figures of `GET /apps`, in ms: to the response head (the server's work) and to
/// the body's last byte (what a client waits for).
struct AppsLatency {
    head: (f64, f64),
    full: (f64, f64),
}

/// `GET /eureka/apps` as JSON: (unchanged registry between requests, a metadata write
/// before each one so the document is rebuilt, unchanged and gzipped). Each figure is the median over `ROUNDS`
/// rounds of 300 requests: on a shared machine a single round's p99 (its third-worst
/// sample) is mostly whoever else had the CPU at that moment.
async fn get_apps_latency(
    addr: SocketAddr,
) -> anyhow::Result<(AppsLatency, AppsLatency, AppsLatency)> {
    let mut conn = connect(addr).await?;
    let mut writer = connect(addr).await?;
    let (mut stable_rounds, mut changed_rounds, mut gzip_rounds) =
        (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (mut stable, mut changed) = (Samples::default(), Samples::default());
        for i in 0..300 {
            stable.fetch_apps(&mut conn, false).await?;
            let n = (round * 300 + i) * 31 % 10_000;
            let path = format!("/eureka/apps/{}/{}/metadata?round={i}", app_of(n), id_of(n));
            exchange(&mut writer, request(Method::PUT, &path, Bytes::new())).await?;
            changed.fetch_apps(&mut conn, false).await?;
        }
        let mut gzip = Samples::default();
        for _ in 0..300 {
            gzip.fetch_apps(&mut conn, true).await?;
        }
        let (s, c, g) = (stable.latency(), changed.latency(), gzip.latency());
        println!(
            "GET /apps round {round}: unchanged p50 {:.2} ms p99 {:.2} ms; after a write p50 {:.2} ms p99 {:.2} ms; gzipped p50 {:.2} ms p99 {:.2} ms",
            s.full.0, s.full.1, c.full.0, c.full.1, g.full.0, g.full.1
        );
        stable_rounds.push(s);
        changed_rounds.push(c);
        gzip_rounds.push(g);
    }
    Ok((
        AppsLatency::median(&stable_rounds),
        AppsLatency::median(&changed_rounds),
        AppsLatency::median(&gzip_rounds),
    ))
}

impl AppsLatency {
    /// Each figure's median over rounds.
    fn median(rounds: &[AppsLatency]) -> AppsLatency {
        let m = |f: fn(&AppsLatency) -> f64| median(&mut rounds.iter().map(f).collect::<Vec<_>>());
        AppsLatency {
            head: (m(|r| r.head.0), m(|r| r.head.1)),
            full: (m(|r| r.full.0), m(|r| r.full.1)),
        }
    }
}

#[derive(Default)]
struct Samples {
    head: Vec<f64>,
    full: Vec<f64>,
}

impl Samples {
    /// One `GET /apps`, gzipped if asked; the body is read frame by frame and counted, not
    /// gathered, so the client costs no copy of the ~7 MB document.
    async fn fetch_apps(
        &mut self,
        conn: &mut SendRequest<Full<Bytes>>,
        gzip: bool,
    ) -> anyhow::Result<()> {
        let t = Instant::now();
        conn.ready().await?;
        let mut req = request(Method::GET, "/eureka/apps", Bytes::new());
        if gzip {
            req.headers_mut().insert(
                hyper::header::ACCEPT_ENCODING,
                hyper::header::HeaderValue::from_static("gzip"),
            );
        }
        let resp = conn.send_request(req).await?;
        self.head.push(t.elapsed().as_secs_f64() * 1000.0);
        let status = resp.status();
        let mut body = resp.into_body();
        let mut len = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                len += data.len();
            }
        }
        self.full.push(t.elapsed().as_secs_f64() * 1000.0);
        // 10k instances: ~7 MB, or ~0.3 MB gzipped.
        let least = if gzip { 100_000 } else { 1_000_000 };
        anyhow::ensure!(
            status == StatusCode::OK && len > least,
            "GET /apps: {status}, {len} bytes"
        );
        Ok(())
    }

    fn latency(mut self) -> AppsLatency {
        AppsLatency {
            head: (median(&mut self.head), quantile(&mut self.head, 0.99)),
            full: (median(&mut self.full), quantile(&mut self.full, 0.99)),
        }
    }
}

/// (p50, p99) in ms from sending a cancel to the watch stream delivering its `delete` event.
async fn cancel_to_watcher(addr: SocketAddr) -> anyhow::Result<(f64, f64)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut watch_conn, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::get("/keel/v1/watch?app=WATCHED")
        .header("host", "bench")
        .body(Empty::new())?;
    let mut body: Incoming = watch_conn.send_request(req).await?.into_body();
    let mut buf = String::new();
    let mut conn = connect(addr).await?;
    let mut samples = Vec::new();
    for i in 0..300 {
        let id = format!("w-{i}");
        let reg = Bytes::from(instance_json("WATCHED", &id));
        exchange(
            &mut conn,
            request(Method::POST, "/eureka/apps/WATCHED", reg),
        )
        .await?;
        next_event(&mut body, &mut buf, "upsert").await?;
        let t = Instant::now();
        let path = format!("/eureka/apps/WATCHED/{id}");
        exchange(&mut conn, request(Method::DELETE, &path, Bytes::new())).await?;
        next_event(&mut body, &mut buf, "delete").await?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((median(&mut samples), quantile(&mut samples, 0.99)))
}

/// Reads SSE frames until one of `kind` (skipping the snapshot and heartbeats).
async fn next_event(body: &mut Incoming, buf: &mut String, kind: &str) -> anyhow::Result<()> {
    let marker = format!("event: {kind}\n");
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if frame.starts_with(&marker) || frame.contains(&format!("\n{marker}")) {
                return Ok(());
            }
        }
        let frame = body
            .frame()
            .await
            .ok_or_else(|| anyhow::anyhow!("watch stream ended"))??;
        if let Ok(data) = frame.into_data() {
            buf.push_str(&String::from_utf8_lossy(&data));
        }
    }
}

/// The ceiling: a hyper handler answering 200 with an empty body, on its own process.
async fn trivial_server() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("trivial listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Empty::<Bytes>::new()))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
