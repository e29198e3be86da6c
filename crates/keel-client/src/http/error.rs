//! `CallError`: why an `lb://` call produced no response, recovered from the stack's boxed errors.

use std::time::Duration;

use bytes::Bytes;
use keel_eureka::AppName;
use keel_resilience::layer::BoxError;
use keel_resilience::{BulkheadFull, ShortCircuited, TimedOut};

/// Discovery knows no UP instance of the app.
#[derive(Debug, thiserror::Error)]
#[error("no available instance of {0}")]
pub struct NoInstances(pub AppName);

/// The instance answered with a 5xx: a failure for the balancer, the breaker and retries.
#[derive(Debug, thiserror::Error)]
#[error("{instance} answered HTTP {}", .response.status())]
pub struct UpstreamStatus {
    pub instance: String,
    pub response: http::Response<Bytes>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("no available instance of {app}")]
    NoInstances { app: AppName },
    #[error("{app}: circuit breaker open")]
    ShortCircuited { app: AppName },
    #[error("{app}: {max} calls already in flight")]
    Rejected { app: AppName, max: usize },
    #[error("{app}: timed out after {after:?}")]
    TimedOut { app: AppName, after: Duration },
    #[error("{app}: {instance} answered HTTP {}", .response.status())]
    Status {
        app: AppName,
        instance: String,
        response: Box<http::Response<Bytes>>,
    },
    #[error("{app}: {source}")]
    Transport {
        app: AppName,
        #[source]
        source: reqwest::Error,
    },
    #[error("{app}: {source}")]
    Other {
        app: AppName,
        #[source]
        source: BoxError,
    },
}

impl CallError {
    pub(crate) fn from_stack(app: AppName, e: BoxError) -> Self {
        if e.is::<NoInstances>() {
            return Self::NoInstances { app };
        }
        if e.is::<ShortCircuited>() {
            return Self::ShortCircuited { app };
        }
        if let Some(b) = e.downcast_ref::<BulkheadFull>() {
            return Self::Rejected { app, max: b.max };
        }
        if let Some(t) = e.downcast_ref::<TimedOut>() {
            return Self::TimedOut { app, after: t.0 };
        }
        let e = match e.downcast::<UpstreamStatus>() {
            Ok(s) => {
                let UpstreamStatus { instance, response } = *s;
                return Self::Status {
                    app,
                    instance,
                    response: Box::new(response),
                };
            }
            Err(e) => e,
        };
        match e.downcast::<reqwest::Error>() {
            Ok(source) => Self::Transport {
                app,
                source: *source,
            },
            Err(source) => Self::Other { app, source },
        }
    }
}

/// Whether a failed attempt may be worth repeating elsewhere: the connection failed, the attempt
/// timed out, or the instance said it is unavailable (502/503/504). A 500 is the service's
/// answer, not the instance's state, so it is not retried.
pub(crate) fn is_retryable_failure(e: &BoxError) -> bool {
    if let Some(s) = e.downcast_ref::<UpstreamStatus>() {
        return matches!(s.response.status().as_u16(), 502..=504);
    }
    e.is::<reqwest::Error>() || e.is::<TimedOut>()
}
