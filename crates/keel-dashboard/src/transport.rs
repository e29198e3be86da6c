//! How the dashboard and `keel ctl` talk to a component: over HTTP, or in-process through the
//! component's own router (same requests, same answers, no socket).

use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;

/// Why a component could not answer what was asked. `exit_code` is what `keel ctl` exits with.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("invalid URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "{url} refused the credentials ({status}); pass a token with --token or KEEL_CTL_TOKEN"
    )]
    AuthRefused { url: String, status: u16 },
    #[error("{url}: not found: {message}")]
    NotFound { url: String, message: String },
    #[error("{url} rejected the request ({status}): {message}")]
    Rejected {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} failed ({status}): {message}")]
    Failed {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} answered something unexpected: {reason}")]
    BadBody { url: String, reason: String },
    #[error("{0}")]
    Unavailable(String),
}

impl SourceError {
    /// 2 bad argument, 3 unreachable, 4 auth refused, 5 not found, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            SourceError::BadUrl { .. } | SourceError::Rejected { .. } => 2,
            SourceError::Unreachable { .. } => 3,
            SourceError::AuthRefused { .. } => 4,
            SourceError::NotFound { .. } => 5,
            _ => 1,
        }
    }
}

/// Credentials sent with every request: `Authorization: Bearer <token>` (Keel's components accept
/// a token as bearer or as a basic-auth password).
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub bearer: Option<String>,
}

/// An answer: status, content type and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    pub url: String,
}

impl Answer {
    /// The body as JSON when the status is a success; otherwise the matching [`SourceError`].
    pub fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, SourceError> {
        let answer = self.success()?;
        serde_json::from_slice(&answer.body).map_err(|e| SourceError::BadBody {
            url: answer.url,
            reason: e.to_string(),
        })
    }

    /// `self` if 2xx; otherwise the error its status means.
    pub fn success(self) -> Result<Self, SourceError> {
        if self.status.is_success() {
            return Ok(self);
        }
        let message = error_message(&self.body);
        let url = self.url;
        let status = self.status.as_u16();
        Err(match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                SourceError::AuthRefused { url, status }
            }
            StatusCode::NOT_FOUND => SourceError::NotFound { url, message },
            s if s.is_client_error() => SourceError::Rejected {
                url,
                status,
                message,
            },
            _ => SourceError::Failed {
                url,
                status,
                message,
            },
        })
    }
}

/// The `error`/`message` of a JSON error body, or the text itself.
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "error"] {
            if let Some(m) = v.get(key).and_then(|m| m.as_str()) {
                return m.to_owned();
            }
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    if text.is_empty() {
        "no details".to_owned()
    } else {
        text.chars().take(300).collect()
    }
}

#[derive(Clone, Debug)]
enum Via {
    Http {
        base: String,
        client: Client<HttpConnector, Full<Bytes>>,
    },
    Local(Router),
}

/// One component's address: a base URL, or its router in this process.
#[derive(Clone, Debug)]
pub struct Transport {
    via: Via,
    credentials: Credentials,
    timeout: Duration,
}

impl Transport {
    /// `base` is the component's origin, e.g. `http://127.0.0.1:8761` (a trailing `/` and an
    /// Eureka `/eureka` suffix are dropped).
    pub fn http(
        base: &str,
        credentials: Credentials,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        let trimmed = base.trim().trim_end_matches('/');
        let trimmed = trimmed.strip_suffix("/eureka").unwrap_or(trimmed);
        let uri: http::Uri =
            trimmed
                .parse()
                .map_err(|e: http::uri::InvalidUri| SourceError::BadUrl {
                    url: base.to_owned(),
                    reason: e.to_string(),
                })?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(SourceError::BadUrl {
                url: base.to_owned(),
                reason: "expected http://HOST:PORT".to_owned(),
            });
        }
        Ok(Self {
            via: Via::Http {
                base: trimmed.to_owned(),
                client: Client::builder(TokioExecutor::new()).build_http(),
            },
            credentials,
            timeout,
        })
    }

    /// In-process: requests go straight into `router`.
    pub fn local(router: Router) -> Self {
        Self {
            via: Via::Local(router),
            credentials: Credentials::default(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Where requests go, for messages: the base URL or `in-process`.
    pub fn base(&self) -> &str {
        match &self.via {
            Via::Http { base, .. } => base,
            Via::Local(_) => "in-process",
        }
    }

    pub async fn get(&self, path: &str) -> Result<Answer, SourceError> {
        self.send(Method::GET, path, None, Bytes::new()).await
    }

    /// Sends one request; a non-2xx status is still `Ok` (see [`Answer::success`]).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Answer, SourceError> {
        let url = format!("{}{path}", self.base());
        let mut builder = Request::builder()
            .method(method)
            .header(header::ACCEPT, "application/json");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        if let Some(token) = &self.credentials.bearer {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bad = |e: http::Error| SourceError::BadUrl {
            url: url.clone(),
            reason: e.to_string(),
        };
        let unreachable = |reason: String| SourceError::Unreachable {
            url: url.clone(),
            reason,
        };
        let exchange = async {
            match &self.via {
                Via::Http { client, .. } => {
                    let request = builder.uri(&url).body(Full::new(body)).map_err(bad)?;
                    let response = client
                        .request(request)
                        .await
                        .map_err(|e| unreachable(describe(&e)))?;
                    let status = response.status();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| unreachable(e.to_string()))?
                        .to_bytes();
                    Ok((status, body))
                }
                Via::Local(router) => {
                    let request = builder
                        .uri(path)
                        .body(axum::body::Body::from(body))
                        .map_err(bad)?;
                    let response = router
                        .clone()
                        .oneshot(request)
                        .await
                        .map_err(|e| unreachable(e.to_string()))?;
                    let status = response.status();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| unreachable(e.to_string()))?
                        .to_bytes();
                    Ok((status, body))
                }
            }
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))??;
        Ok(Answer { status, body, url })
    }
}

/// hyper's client error with its cause chain (the cause says "connection refused").
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
