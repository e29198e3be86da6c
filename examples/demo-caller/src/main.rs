//! `demo-caller --bind ADDR --registry URL[,URL…]`: the caller until SIGTERM.

use std::time::Duration;

use clap::Parser;

/// A demo service that calls demo-callee through the balancer, with a fallback.
#[derive(Debug, Parser)]
struct Flags {
    /// Address to listen on (port 0 picks one).
    #[arg(long, env = "DEMO_BIND", default_value = "127.0.0.1:0")]
    bind: std::net::SocketAddr,
    /// Registry URLs, comma-separated (Eureka service URLs or bare origins).
    #[arg(
        long,
        env = "KEEL_REGISTRY",
        default_value = "http://127.0.0.1:8761/eureka/"
    )]
    registry: String,
    /// Application name to register.
    #[arg(long, env = "DEMO_APP", default_value = "demo-caller")]
    app: String,
    /// Host to advertise (defaults to the bound IP; with 0.0.0.0, the IP this host reaches the
    /// registry from, so that other containers can reach this one).
    #[arg(long, env = "DEMO_ADVERTISE_HOST")]
    advertise_host: Option<String>,
    /// The service to call.
    #[arg(long, env = "DEMO_CALLEE", default_value = "demo-callee")]
    callee: String,
    /// Delta polling interval in seconds (registries without a watch stream only).
    #[arg(long, env = "DEMO_POLL_SECS", default_value_t = 30)]
    poll_secs: u64,
    /// Heartbeat interval in seconds.
    #[arg(long, env = "DEMO_RENEWAL_SECS", default_value_t = 30)]
    renewal_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let flags = Flags::parse();
    let registries = keel_client::RegistryUrls::parse_list(&flags.registry)?;
    let running = demo_caller::start(demo_caller::CallerConfig {
        bind: flags.bind,
        registries: registries.clone(),
        app: keel_eureka::AppName::parse(&flags.app)?,
        callee: keel_eureka::AppName::parse(&flags.callee)?,
        advertise_host: match flags.advertise_host {
            Some(host) => Some(host),
            None if flags.bind.ip().is_unspecified() => registries
                .source_ip_within(Duration::from_secs(30))
                .await
                .map(|ip| ip.to_string()),
            None => None,
        },
        poll_interval: Duration::from_secs(flags.poll_secs),
        renewal_interval: Duration::from_secs(flags.renewal_secs),
    })
    .await?;
    wait_for_signal().await;
    running.shutdown().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
