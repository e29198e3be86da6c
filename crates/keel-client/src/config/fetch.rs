//! One `GET /{application}/{profile}[/{label}]` against one server, with `If-None-Match`.

use std::time::Duration;

use super::error::ConfigError;
use super::server_url::ConfigServerUrl;

/// What a fetch returned.
pub(crate) enum Fetched {
    /// 304: the configuration behind `etag` is still current.
    NotModified,
    New {
        body: String,
        etag: Option<String>,
    },
}

/// What to fetch.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub application: String,
    pub profile: String,
    pub label: Option<String>,
}

pub(crate) async fn fetch(
    http: &reqwest::Client,
    server: &ConfigServerUrl,
    target: &Target,
    etag: Option<&str>,
    timeout: Duration,
) -> Result<Fetched, ConfigError> {
    let url = server.environment(
        &target.application,
        &target.profile,
        target.label.as_deref(),
    );
    let shown = url.to_string();
    let mut request = http
        .get(url)
        .header(http::header::ACCEPT, "application/json");
    if let Some((user, password)) = server.basic() {
        request = request.basic_auth(user, Some(password));
    }
    if let Some(tag) = etag {
        request = request.header(http::header::IF_NONE_MATCH, tag);
    }
    let call = async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = if status == 200 {
            Some(response.text().await?)
        } else {
            None
        };
        Ok::<_, reqwest::Error>((status, etag, body))
    };
    let (status, etag, body) = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| ConfigError::Timeout {
            url: shown.clone(),
            timeout,
        })?
        .map_err(|source| ConfigError::Http {
            url: shown.clone(),
            source,
        })?;
    match (status, body) {
        (200, Some(body)) => Ok(Fetched::New { body, etag }),
        (304, _) => Ok(Fetched::NotModified),
        (404, _) => Err(ConfigError::NotFound { url: shown }),
        (status, _) => Err(ConfigError::Status { url: shown, status }),
    }
}
