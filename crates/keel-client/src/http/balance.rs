//! The balancing layer: picks an instance for each attempt (never one this call already tried,
//! while another is available) and feeds the outcome back to the balancer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use keel_balance::{Balancer, InstanceSpec};
use keel_resilience::layer::BoxError;
use tower::{Layer, Service};

use super::error::{NoInstances, UpstreamStatus};
use super::request::LbRequest;
use super::transport::Outgoing;
use crate::instance::ServiceInstance;

/// What the balancer holds per instance: where to send.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub base_url: Arc<str>,
}

/// The balancer's view of discovered instances (those with a usable port).
pub fn specs(instances: &[ServiceInstance]) -> Vec<InstanceSpec<Endpoint>> {
    instances
        .iter()
        .filter_map(|i| {
            let base_url = i.base_url()?;
            let spec = InstanceSpec::new(
                i.id.as_str(),
                Endpoint {
                    base_url: base_url.into(),
                },
            );
            Some(match &i.zone {
                Some(z) => spec.zone(z.clone()),
                None => spec,
            })
        })
        .collect()
}

/// Calls and retries per service, counted where each attempt is placed.
#[derive(Debug, Default)]
pub struct ServiceStats {
    pub calls: AtomicU64,
    pub retries: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct BalanceLayer {
    balancer: Arc<Balancer<Endpoint>>,
    stats: Arc<ServiceStats>,
}

impl BalanceLayer {
    pub fn new(balancer: Arc<Balancer<Endpoint>>, stats: Arc<ServiceStats>) -> Self {
        Self { balancer, stats }
    }
}

impl<S> Layer<S> for BalanceLayer {
    type Service = Balance<S>;
    fn layer(&self, inner: S) -> Balance<S> {
        Balance {
            inner,
            balancer: self.balancer.clone(),
            stats: self.stats.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Balance<S> {
    inner: S,
    balancer: Arc<Balancer<Endpoint>>,
    stats: Arc<ServiceStats>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<LbRequest> for Balance<S>
where
    S: Service<Outgoing, Response = http::Response<Bytes>, Error = BoxError> + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<Bytes>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LbRequest) -> Self::Future {
        let tried = req.tried.get();
        let tried_refs: Vec<_> = tried.iter().collect();
        // Another instance if there is one, else a tried one again rather than nothing: the retry
        // policy above only retries requests that are safe to repeat.
        let pick = self.balancer.pick_excluding(&tried_refs);
        let Some(pick) = pick else {
            return Box::pin(std::future::ready(Err(NoInstances(req.app).into())));
        };
        let counter = if tried.is_empty() {
            &self.stats.calls
        } else {
            &self.stats.retries
        };
        counter.fetch_add(1, Ordering::Relaxed);
        req.tried.push(pick.id().clone());
        let instance = pick.id().to_string();
        let fut = self.inner.call(Outgoing {
            url: format!("{}{}", pick.endpoint().base_url, req.path_and_query),
            method: req.method,
            headers: req.headers,
            body: req.body,
        });
        let balancer = self.balancer.clone();
        Box::pin(async move {
            match fut.await {
                Ok(response) if response.status().is_server_error() => {
                    balancer.failure(pick);
                    Err(UpstreamStatus { instance, response }.into())
                }
                Ok(response) => {
                    balancer.success(pick);
                    Ok(response)
                }
                Err(e) => {
                    tracing::debug!(instance = %instance, error = %e, "attempt failed");
                    balancer.failure(pick);
                    Err(e)
                }
            }
        })
    }
}
