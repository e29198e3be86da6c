//! The bottom of the stack: one attempt to one instance over reqwest, the body read whole.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method};
use keel_resilience::layer::BoxError;
use tower::Service;

/// An attempt with its instance chosen: absolute URL and everything to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// reqwest as a tower service over [`Outgoing`]. Connections are pooled per instance.
#[derive(Debug, Clone)]
pub struct Transport {
    http: reqwest::Client,
}

impl Transport {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<Outgoing> for Transport {
    type Response = http::Response<Bytes>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, out: Outgoing) -> Self::Future {
        let request = self
            .http
            .request(out.method, out.url)
            .headers(out.headers)
            .body(out.body);
        Box::pin(async move {
            let response = request.send().await?;
            let mut builder = http::Response::builder()
                .status(response.status())
                .version(response.version());
            if let Some(headers) = builder.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await?;
            Ok(builder.body(body)?)
        })
    }
}
