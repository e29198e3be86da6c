//! The dashboard: one live page for the whole platform, served on the registry's port, and the
//! component views `keel ctl` shares with it.
//!
//! API boundary: [`Dashboard`] (built from the component views), [`router`] (the page, its JSON
//! feeds and the `/keel/v1/dashboard/events` SSE stream), and the views themselves:
//! [`RegistryView`], [`ConfigView`], [`GatewayView`] and [`HystrixSource`], each with an
//! in-process and an HTTP implementation.

mod auth;
mod config_view;
mod gateway_view;
mod http;
mod registry_view;
mod sampler;
mod traffic;
mod transport;
mod turbine;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use keel_server::HealthSource;
use tokio_util::sync::CancellationToken;

pub use auth::DashboardAuth;
pub use config_view::{ConfigClient, ConfigView, MergedEntry, MergedView};
pub use gateway_view::{GatewayClient, GatewayView};
pub use http::router;
pub use registry_view::{
    AppView, HttpRegistry, InstanceView, LeaseView, LocalRegistry, PeerView, RegistryState,
    RegistryView,
};
pub use sampler::Frame;
pub use traffic::{Point, RouteCounters, TrafficSeries};
pub use transport::{Answer, Credentials, SourceError, Transport};
pub use turbine::{BreakerView, HttpHystrixSource, HystrixSource, LocalHystrixSource, Turbine};

/// The application names components register under (issues 5 and 6).
pub const CONFIG_SERVER_APP: &str = "CONFIGSERVER";
pub const GATEWAY_APP: &str = "KEEL-GATEWAY";

/// A component the dashboard watches, reached in-process or over HTTP.
#[derive(Clone)]
pub struct Watched {
    pub name: String,
    pub health: Arc<dyn HealthSource>,
}

/// How a peer component is found: given (in-process in standalone mode), or looked up in the
/// registry under its application name and reached over HTTP.
#[derive(Clone)]
pub enum Peer<T: ?Sized> {
    Given(Arc<T>),
    Discover,
}

/// The dashboard's settings.
#[derive(Clone, Debug)]
pub struct DashboardConfig {
    /// How often views are sampled and pushed to open pages.
    pub tick: Duration,
    pub auth: DashboardAuth,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            auth: DashboardAuth::default(),
        }
    }
}

/// The dashboard's state. Cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: DashboardConfig,
    pub registry: Arc<dyn RegistryView>,
    pub config_server: Peer<dyn ConfigView>,
    pub gateway: Peer<dyn GatewayView>,
    pub components: Vec<Watched>,
    pub turbine: Turbine,
    pub traffic: Mutex<TrafficSeries>,
    pub frames: tokio::sync::watch::Sender<Arc<Frame>>,
    pub sessions: auth::Sessions,
    pub started: OnceLock<()>,
    pub streams_end: OnceLock<CancellationToken>,
    /// Views of discovered components, by base URL, reused across ticks.
    pub discovered: Mutex<sampler::Discovered>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field(
                "components",
                &self
                    .inner
                    .components
                    .iter()
                    .map(|c| &c.name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    pub fn new(
        config: DashboardConfig,
        registry: Arc<dyn RegistryView>,
        config_server: Peer<dyn ConfigView>,
        gateway: Peer<dyn GatewayView>,
        components: Vec<Watched>,
    ) -> Self {
        let (frames, _) = tokio::sync::watch::channel(Arc::new(Frame::default()));
        Self {
            inner: Arc::new(Inner {
                config,
                registry,
                config_server,
                gateway,
                components,
                turbine: Turbine::default(),
                traffic: Mutex::new(TrafficSeries::default()),
                frames,
                sessions: auth::Sessions::default(),
                started: OnceLock::new(),
                streams_end: OnceLock::new(),
                discovered: Mutex::new(sampler::Discovered::default()),
            }),
        }
    }

    /// Event streams end (and sampling stops) when this token is cancelled (pass
    /// `Shutdown::streams_token()`).
    pub fn end_streams_on(&self, token: CancellationToken) {
        let _ = self.inner.streams_end.set(token);
    }

    /// Starts sampling (once; later calls do nothing). Called on the first request, so a
    /// dashboard nobody opens costs nothing.
    pub fn ensure_started(&self) {
        if self.inner.started.set(()).is_ok() {
            tokio::spawn(sampler::run(self.inner.clone()));
        }
    }

    /// The latest sampled frame (what open pages show).
    pub fn frame(&self) -> Arc<Frame> {
        self.inner.frames.borrow().clone()
    }

    /// Waits for the next frame after the current one.
    pub async fn next_frame(&self) -> Arc<Frame> {
        self.ensure_started();
        let mut rx = self.inner.frames.subscribe();
        rx.borrow_and_update();
        let _ = rx.changed().await;
        rx.borrow().clone()
    }

    pub(crate) fn streams_end(&self) -> CancellationToken {
        self.inner.streams_end.get().cloned().unwrap_or_default()
    }
}
