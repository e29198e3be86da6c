//! Wiring: builds the chosen components, binds their listeners and serves until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use keel_dashboard::{
    ConfigClient, Dashboard, DashboardAuth, DashboardConfig, GatewayClient, LocalRegistry, Peer,
    Transport, Watched,
};
use keel_server::{
    Common, HealthRegistry, HttpMetrics, LocalHealthSource, MetricsRegistry, Shutdown,
};

use crate::settings::Settings;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Registry,
    Config,
    Gateway,
}

pub const ALL: &[Component] = &[Component::Registry, Component::Config, Component::Gateway];

/// One component ready to serve: its name, address, routes and health.
struct Planned {
    name: &'static str,
    addr: SocketAddr,
    router: Router,
    health: HealthRegistry,
}

/// The config centre's settings as the library takes them. Without `--git-uri` or `--native`
/// it serves the sample repository it creates in data-dir.
fn config_server(settings: &Settings) -> anyhow::Result<keel_config::ConfigServerConfig> {
    let c = &settings.config;
    let backend = match (&c.native, &c.git_uri) {
        (Some(dir), _) => keel_config::Backend::Native { dir: dir.clone() },
        (None, uri) => {
            let uri = match uri {
                Some(uri) => uri.clone(),
                None => {
                    keel_config::ensure_sample_repo(&settings.data_dir.join("config-repo.git"))?
                        .display()
                        .to_string()
                }
            };
            let basedir = c
                .basedir
                .clone()
                .unwrap_or_else(|| settings.data_dir.join("config-mirror"));
            keel_config::Backend::Git { uri, basedir }
        }
    };
    let mut config = keel_config::ConfigServerConfig::new(backend);
    config.search_paths = c.search_paths.clone();
    config.default_label = c.default_label.clone();
    config.accept_empty = c.accept_empty;
    config.refresh_interval = c.refresh_interval;
    config.debounce = c.debounce;
    config.encrypt_key = c.encrypt_key.clone();
    config.monitor_secret = c.monitor_secret.clone();
    config.read_auth = c.read_auth.clone();
    config.admin_auth = c.admin_auth.clone();
    config.bus = c.bus.clone();
    Ok(config)
}

/// Runs `which` in this process until SIGTERM or Ctrl-C, then shuts down gracefully.
pub async fn components(settings: &Settings, which: &[Component]) -> anyhow::Result<()> {
    let shutdown = Shutdown::new(settings.shutdown);
    let mut prometheus = prometheus_client::registry::Registry::with_prefix("keel");
    let http_metrics = HttpMetrics::new(&mut prometheus);

    let mut planned = Vec::new();
    let mut gateway_handle: Option<keel_gateway::Gateway> = None;
    // What the dashboard reads in-process (issue 8); peers not in this process are discovered.
    let mut registry_handle: Option<keel_registry::Registry> = None;
    let mut config_view: Option<Arc<ConfigClient>> = None;
    let mut gateway_view: Option<Arc<GatewayClient>> = None;
    // Held until the process ends: replication stops when the cluster is dropped.
    let mut cluster: Option<keel_registry::Cluster> = None;
    for component in which {
        let health = HealthRegistry::new();
        let (name, addr, router) = match component {
            Component::Registry => {
                let registry = keel_registry::Registry::new(
                    settings.registry.clone(),
                    Arc::new(keel_registry::SystemClock),
                );
                registry.observe(&health, &mut prometheus);
                registry.end_streams_on(shutdown.streams_token());
                // Resolved before the cluster starts, so start-up sync copies from them.
                let dns_peers = match &settings.registry_peers_dns {
                    Some(dns) => dns.resolve().await.unwrap_or_else(|e| {
                        tracing::warn!(name = dns.name(), error = %e, "peers DNS lookup failed");
                        Vec::new()
                    }),
                    None => Vec::new(),
                };
                if !settings.registry_peers.is_empty() || settings.registry_peers_dns.is_some() {
                    let mut peers = settings.registry_peers.clone();
                    peers.extend(dns_peers.iter().cloned());
                    let c = keel_registry::Cluster::start(
                        &registry,
                        keel_registry::ClusterConfig {
                            peers,
                            ..keel_registry::ClusterConfig::default()
                        },
                        Arc::new(keel_registry::TcpConnector),
                    );
                    if let Some(dns) = &settings.registry_peers_dns {
                        c.follow_dns(
                            dns.clone(),
                            settings.registry_peers.clone(),
                            dns_peers,
                            settings.registry_peers_dns_interval,
                        );
                    }
                    c.observe(&health);
                    cluster = Some(c);
                }
                registry_handle = Some(registry.clone());
                (
                    "registry",
                    settings.registry_bind,
                    keel_registry::router(registry),
                )
            }
            Component::Config => {
                let server =
                    keel_config::ConfigServer::start(config_server(settings)?, &health, &shutdown)
                        .await?;
                let router = keel_config::router(server);
                config_view = Some(Arc::new(ConfigClient::new(Transport::local(
                    router.clone(),
                ))));
                ("config", settings.config_bind, router)
            }
            Component::Gateway => {
                let gateway = keel_gateway::Gateway::new(settings.gateway.clone(), &health)?;
                gateway.register_metrics(&mut prometheus);
                gateway.spawn_route_watch();
                gateway_handle = Some(gateway.clone());
                let router = keel_gateway::router(gateway.clone());
                // The admin API alone: it is not on the proxy's router when `gateway.admin-bind` is set.
                let admin = keel_gateway::admin_router(gateway);
                gateway_view = Some(Arc::new(GatewayClient::new(Transport::local(admin))));
                ("gateway", settings.gateway_bind, router)
            }
        };
        planned.push(Planned {
            name,
            addr,
            router,
            health,
        });
    }

    // The dashboard lives on the registry's port, as Eureka's page does, and reads every
    // component of this process through the in-process health source.
    let watched: Vec<Watched> = planned
        .iter()
        .map(|p| Watched {
            name: p.name.to_owned(),
            health: Arc::new(LocalHealthSource::new(p.health.clone(), shutdown.clone())),
        })
        .collect();
    if let (Some(registry), Some(handle)) = (
        planned.iter_mut().find(|p| p.name == "registry"),
        &registry_handle,
    ) {
        let auth = &settings.registry.auth;
        let dashboard = Dashboard::new(
            DashboardConfig {
                auth: DashboardAuth {
                    tokens: auth.tokens.clone(),
                    users: auth.users.clone(),
                    protect_reads: auth.protect_reads,
                },
                ..DashboardConfig::default()
            },
            Arc::new(LocalRegistry::new(handle.clone(), cluster.clone())),
            config_view
                .clone()
                .map_or(Peer::Discover, |c| Peer::Given(c as _)),
            gateway_view
                .clone()
                .map_or(Peer::Discover, |g| Peer::Given(g as _)),
            watched,
        );
        dashboard.end_streams_on(shutdown.streams_token());
        let router = std::mem::take(&mut registry.router);
        registry.router = router.merge(keel_dashboard::router(dashboard));
    }

    let metrics = MetricsRegistry::new(prometheus);
    if let Some(g) = &gateway_view {
        g.set_metrics(metrics.clone());
    }
    // Bind everything before serving anything, so a taken port fails start-up as a whole.
    let mut bound = Vec::new();
    let mut registry_addr: Option<SocketAddr> = None;
    let mut config_addr: Option<SocketAddr> = None;
    let mut gateway_addr: Option<SocketAddr> = None;
    for p in planned {
        let listener = keel_server::bind(p.name, p.addr)
            .await
            .with_context(|| format!("start {}", p.name))?;
        let mut limits = settings.limits;
        if p.name == "gateway" {
            // The gateway enforces its own body limit (gateway.max-body-bytes, routes' RequestSize);
            // http.max-body-bytes keeps capping every other component.
            limits.max_body_bytes = usize::MAX;
            gateway_addr = Some(listener.local_addr);
        }
        let common = Common {
            shutdown: shutdown.clone(),
            health: p.health,
            metrics: metrics.clone(),
            http_metrics: http_metrics.clone(),
            limits,
        };
        if p.name == "registry" {
            registry_addr = Some(listener.local_addr);
        }
        if p.name == "config" {
            config_addr = Some(listener.local_addr);
        }
        let app = keel_server::app(p.name, p.router, &common);
        bound.push((listener, app, common));
    }
    // The gateway follows the registry's watch stream: in standalone mode the in-process registry
    // at its bound address (the same SSE protocol as a remote one), otherwise `registry.url`.
    if let Some(gateway) = &gateway_handle {
        let url = match registry_addr {
            Some(addr) => local_url(addr),
            None => settings.registry_url.clone(),
        };
        gateway.follow_registry(&url)?;
        // Routes from the config centre: the in-process config server in standalone mode.
        if let Some(application) = &settings.gateway_config_routes {
            let url = config_addr.map_or_else(|| settings.config_url.clone(), local_url);
            let mut source = keel_gateway::ConfigRoutes::new(url);
            source.application = application.clone();
            gateway.follow_config(source);
        }
    }

    // The config server registers in `config.registry-url`, or in standalone mode in the
    // in-process registry at its bound address.
    let mut registrations = Vec::new();
    let components = [
        (
            crate::self_registration::CONFIG_SERVER,
            config_addr,
            &settings.config.registry_url,
            &settings.config_url,
        ),
        (
            crate::self_registration::GATEWAY,
            gateway_addr,
            &settings.gateway_registry_url,
            &settings.gateway_url,
        ),
    ];
    for (who, bound, urls, public_url) in components {
        let urls = match (bound, urls, registry_addr) {
            (Some(_), Some(urls), _) => urls.clone(),
            (Some(_), None, Some(registry)) => format!("{}/eureka/", local_url(registry)),
            _ => continue,
        };
        if let Some(bound) = bound {
            registrations
                .push(crate::self_registration::start(who, &urls, bound, public_url).await?);
        }
    }

    let signal = shutdown.clone();
    tokio::spawn(async move {
        if registrations.is_empty() {
            signal.on_signal().await;
        } else {
            // Deregistered (DOWN, then cancel) before readiness drops and listeners close, so
            // discovery-first clients stop picking these components first and an in-process
            // registry is still there to hear it.
            wait_for_signal().await;
            let stops: Vec<_> = registrations
                .into_iter()
                .map(|r| tokio::spawn(crate::self_registration::stop(r)))
                .collect();
            for stop in stops {
                let _ = stop.await;
            }
            signal.begin().await;
        }
    });
    // TLS termination for the gateway's listener; certificates are re-read when their files change.
    let gateway_tls = if settings.gateway_tls.is_empty() {
        None
    } else {
        let tls = keel_gateway::TlsTerminator::load(settings.gateway_tls.clone())
            .context("gateway TLS")?;
        tls.spawn_watch(std::time::Duration::from_secs(2));
        Some(tls.acceptor())
    };
    if let (Some(addr), Some(gateway)) = (settings.gateway_admin_bind, &gateway_handle) {
        let listener = keel_server::bind("gateway-admin", addr)
            .await
            .context("start gateway-admin")?;
        let common = Common {
            shutdown: shutdown.clone(),
            health: HealthRegistry::new(),
            metrics: metrics.clone(),
            http_metrics: http_metrics.clone(),
            limits: settings.limits,
        };
        let app = keel_server::app(
            "gateway-admin",
            keel_gateway::admin_router(gateway.clone()),
            &common,
        );
        bound.push((listener, app, common));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, app, common) in bound {
        if listener.component == "gateway"
            && let Some(gateway) = &gateway_handle
        {
            // nginx-style workers: a thread and runtime each, with their own upstream pools.
            let tls = gateway_tls.clone();
            let workers = match settings.gateway_workers {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            };
            // Proxied requests skip the router: see keel_gateway::Front.
            let front = keel_gateway::Front::new(gateway.clone(), app)
                .with_own_http1(settings.gateway_own_http1);
            tasks.spawn(async move {
                keel_server::serve_workers(listener, front, &common, tls, workers).await
            });
        } else {
            tasks.spawn(async move { keel_server::serve(listener, app, &common).await });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a listener task failed")?;
    }
    if let Some(c) = cluster {
        c.shutdown();
    }
    tracing::info!("stopped");
    Ok(())
}

/// `http://` + a bound address, reachable from this process (127.0.0.1 for 0.0.0.0).
fn local_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// SIGTERM or Ctrl-C.
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
