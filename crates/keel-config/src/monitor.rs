//! Push webhooks (`POST /monitor`): which provider sent it, whether its signature holds, and
//! which services Spring's monitor would name for the changed paths.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

/// The sender of a webhook, recognised from its headers as Spring's extractors do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitee,
    Gogs,
    Gitea,
    Bitbucket,
    /// `{"path": …}` or `path=…` (also what Keel's `post-receive` hook sends).
    Generic,
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook body is not valid JSON: {0}")]
    BadBody(String),
}

/// A verified webhook: its provider, whether it is a push, and the services to refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub provider: Provider,
    /// `false` for pings and other events that change nothing.
    pub is_push: bool,
    pub services: Vec<String>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn provider(headers: &HeaderMap) -> Provider {
    if header(headers, "x-github-event").is_some() {
        Provider::GitHub
    } else if header(headers, "x-gitlab-event").is_some() {
        Provider::GitLab
    } else if header(headers, "x-gitee-event").is_some()
        || header(headers, "x-git-oschina-event").is_some()
    {
        Provider::Gitee
    } else if header(headers, "x-gitea-event").is_some() {
        Provider::Gitea
    } else if header(headers, "x-gogs-event").is_some() {
        Provider::Gogs
    } else if header(headers, "x-event-key").is_some() {
        Provider::Bitbucket
    } else {
        Provider::Generic
    }
}

fn hmac_sha256(secret: &str, data: &[u8]) -> Hmac<Sha256> {
    // Invariant: HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(data);
    mac
}

/// Checks a hex HMAC-SHA256 of the body, optionally prefixed `sha256=`, in constant time.
fn hex_signature_ok(secret: &str, body: &[u8], presented: Option<&str>) -> bool {
    let Some(sig) = presented else {
        return false;
    };
    let sig = sig.trim();
    let sig = sig.strip_prefix("sha256=").unwrap_or(sig);
    let Ok(bytes) = hex::decode(sig) else {
        return false;
    };
    hmac_sha256(secret, body).verify_slice(&bytes).is_ok()
}

fn token_ok(secret: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|t| crate::http::constant_time_eq(t.trim().as_bytes(), secret.as_bytes()))
}

/// Verifies the webhook against `secret` as its provider signs it.
pub fn verify(provider: Provider, headers: &HeaderMap, body: &[u8], secret: &str) -> bool {
    let sig256 = || header(headers, "x-hub-signature-256");
    match provider {
        Provider::GitHub => hex_signature_ok(secret, body, sig256()),
        Provider::GitLab => token_ok(secret, header(headers, "x-gitlab-token")),
        // Gitee sends the password itself, or (signing mode) base64(HMAC(ts + "\n" + secret)).
        Provider::Gitee => {
            let token = header(headers, "x-gitee-token");
            token_ok(secret, token)
                || header(headers, "x-gitee-timestamp").is_some_and(|ts| {
                    let mac = hmac_sha256(secret, format!("{ts}\n{secret}").as_bytes());
                    let expected = crate::http::base64(&mac.finalize().into_bytes());
                    token_ok(&expected, token)
                })
        }
        Provider::Gitea => hex_signature_ok(secret, body, header(headers, "x-gitea-signature")),
        Provider::Gogs => hex_signature_ok(secret, body, header(headers, "x-gogs-signature")),
        Provider::Bitbucket => {
            hex_signature_ok(secret, body, header(headers, "x-hub-signature"))
                || hex_signature_ok(secret, body, sig256())
        }
        Provider::Generic => {
            hex_signature_ok(secret, body, sig256())
                || token_ok(secret, header(headers, "x-monitor-token"))
        }
    }
}

/// Parses a verified webhook body.
pub fn parse(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Result<Push, WebhookError> {
    let form = header(headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if provider == Provider::Generic && form {
        let text = String::from_utf8_lossy(body);
        let paths: Vec<String> = text
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == "path")
            .map(|(_, v)| {
                percent_encoding::percent_decode_str(&v.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        return Ok(push(provider, true, paths));
    }
    let json: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| WebhookError::BadBody(e.to_string()))?
    };
    let event = |name: &str| header(headers, name).unwrap_or("").to_ascii_lowercase();
    let commit_paths = || -> Vec<String> {
        let mut out = Vec::new();
        for commit in json["commits"].as_array().into_iter().flatten() {
            for field in ["added", "removed", "modified"] {
                for p in commit[field].as_array().into_iter().flatten() {
                    if let Some(p) = p.as_str() {
                        out.push(p.to_owned());
                    }
                }
            }
        }
        out
    };
    let broadcast = || vec!["application.yml".to_owned()];
    Ok(match provider {
        Provider::GitHub => push(provider, event("x-github-event") == "push", commit_paths()),
        Provider::GitLab => push(
            provider,
            event("x-gitlab-event") == "push hook",
            commit_paths(),
        ),
        Provider::Gitee => push(provider, true, commit_paths()),
        Provider::Gogs => push(provider, event("x-gogs-event") == "push", commit_paths()),
        Provider::Gitea => push(provider, event("x-gitea-event") == "push", broadcast()),
        Provider::Bitbucket => {
            let key = event("x-event-key");
            let is_push = matches!(
                key.as_str(),
                "repo:push" | "pullrequest:fulfilled" | "repo:refs_changed" | "pr:merged"
            );
            push(provider, is_push, broadcast())
        }
        Provider::Generic => {
            let paths = match &json["path"] {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => broadcast(),
            };
            push(provider, true, paths)
        }
    })
}

fn push(provider: Provider, is_push: bool, paths: Vec<String>) -> Push {
    let services = if is_push {
        services(&paths)
    } else {
        Vec::new()
    };
    Push {
        provider,
        is_push,
        services,
    }
}

/// Spring's path→service guess: the file stem and every hyphen prefix of it, longest first;
/// `application` stands for everyone (`*`). Keel does not rely on this to notify watchers (it
/// diffs merged configuration), but Spring clients read the response.
pub fn services(paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in paths {
        let file = path.rsplit('/').next().unwrap_or(path);
        let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
        let mut name = stem;
        loop {
            let service = if name == "application" { "*" } else { name };
            if !service.is_empty() && !out.iter().any(|s| s == service) {
                out.push(service.to_owned());
            }
            match name.rsplit_once('-') {
                Some((head, _)) => name = head,
                None => break,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_follow_spring() {
        assert_eq!(services(&["config/foo-dev.yml".into()]), ["foo-dev", "foo"]);
        assert_eq!(services(&["application.yml".into()]), ["*"]);
        assert_eq!(
            services(&["application-dev.yml".into()]),
            ["application-dev", "*"]
        );
    }

    #[test]
    fn github_signature() {
        let body = br#"{"commits":[]}"#;
        let mac = hmac_sha256("s3cret", body).finalize().into_bytes();
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", "push".parse().unwrap());
        headers.insert(
            "x-hub-signature-256",
            format!("sha256={}", hex::encode(mac)).parse().unwrap(),
        );
        assert!(verify(Provider::GitHub, &headers, body, "s3cret"));
        assert!(!verify(Provider::GitHub, &headers, body, "other"));
        assert!(!verify(Provider::GitHub, &headers, b"tampered", "s3cret"));
    }
}
