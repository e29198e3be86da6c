//! `demo-callee --bind ADDR --registry URL[,URL…] [--config-url URL[,URL…]]`: one callee
//! instance until SIGTERM.

use std::time::Duration;

use clap::Parser;

/// A demo service that answers `GET /hello` and registers itself.
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
    #[arg(long, env = "DEMO_APP", default_value = "demo-callee")]
    app: String,
    /// Host to advertise (defaults to the bound IP; with 0.0.0.0, the IP this host reaches the
    /// registry from, so that other containers can reach this one).
    #[arg(long, env = "DEMO_ADVERTISE_HOST")]
    advertise_host: Option<String>,
    /// Serve POST /chaos/allocate?mb=N (allocates and keeps memory; for the chaos suite only).
    #[arg(long, env = "DEMO_CHAOS")]
    chaos: bool,
    /// Heartbeat interval in seconds (the lease is three intervals).
    #[arg(long, env = "DEMO_RENEWAL_SECS", default_value_t = 30)]
    renewal_secs: u64,
    /// Config centre URLs, comma-separated: the greeting is then the `demo.greeting` setting of
    /// this application, updated live.
    #[arg(long, env = "KEEL_CONFIG_URL")]
    config_url: Option<String>,
    /// Active profiles for the configuration, comma-separated.
    #[arg(long, env = "DEMO_PROFILE", default_value = "default")]
    profile: String,
    /// Where the last configuration is kept, to start from when the config centre is down.
    #[arg(long, env = "DEMO_CONFIG_CACHE")]
    config_cache: Option<std::path::PathBuf>,
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
    let running = demo_callee::start(demo_callee::CalleeConfig {
        bind: flags.bind,
        registries: registries.clone(),
        app: keel_eureka::AppName::parse(&flags.app)?,
        advertise_host: match flags.advertise_host {
            Some(host) => Some(host),
            None if flags.bind.ip().is_unspecified() => registries
                .source_ip_within(Duration::from_secs(30))
                .await
                .map(|ip| ip.to_string()),
            None => None,
        },
        renewal_interval: Duration::from_secs(flags.renewal_secs),
        chaos: flags.chaos,
        config: match &flags.config_url {
            Some(urls) => {
                let mut c = keel_client::ConfigClientConfig::new(
                    keel_client::ConfigServerUrls::parse_list(urls)?,
                    &flags.app,
                );
                c.profile = flags.profile.clone();
                c.cache_dir = flags.config_cache.clone();
                Some(c)
            }
            None => None,
        },
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
