//! `ApiKeyAuth` and `BasicAuth`: static credential lists (inline or from a file), kept as SHA-256
//! digests and compared in constant time.

use base64::Engine;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use super::{
    Principal, Rejection, arg_error, constant_time_eq, flag, identity_headers, named, named_list,
};
use crate::definition::Spec;
use crate::filter::FilterError;

type Sha = [u8; 32];

fn sha(bytes: &[u8]) -> Sha {
    Sha256::digest(bytes).into()
}

/// Entries from the inline list argument plus a file (one per line, `#` comments).
fn entries(spec: &Spec, list: &str, file: &str) -> Result<Vec<String>, FilterError> {
    let mut out: Vec<String> = named_list(spec, list)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if let Some(path) = named(spec, file) {
        let text = std::fs::read_to_string(path)
            .map_err(|e| arg_error(spec, format!("read `{path}`: {e}")))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(out)
}

fn challenge(spec: &Spec, scheme: &str) -> Result<HeaderValue, FilterError> {
    let realm = named(spec, "realm").unwrap_or("keel");
    HeaderValue::from_str(&format!("{scheme} realm=\"{realm}\""))
        .map_err(|e| arg_error(spec, format!("`realm`: {e}")))
}

/// A compiled `ApiKeyAuth` filter: keys as `consumer:key` (or a bare key).
#[derive(Debug)]
pub struct ApiKeyAuth {
    keys: Vec<(String, Sha)>,
    pub(super) header: HeaderName,
    query: Option<String>,
    pub(super) identity_headers: Vec<(String, HeaderName)>,
    pub(super) hide_credentials: bool,
    challenge: HeaderValue,
}

impl ApiKeyAuth {
    pub fn compile(spec: &Spec) -> Result<ApiKeyAuth, FilterError> {
        let keys: Vec<(String, Sha)> = entries(spec, "keys", "keys-file")?
            .iter()
            .enumerate()
            .map(|(i, e)| match e.split_once(':') {
                Some((consumer, key)) => (consumer.trim().to_owned(), sha(key.trim().as_bytes())),
                None => (format!("key-{}", i + 1), sha(e.as_bytes())),
            })
            .collect();
        if keys.is_empty() {
            return Err(arg_error(
                spec,
                "give `keys` (consumer:key, …) or `keys-file`",
            ));
        }
        let header = HeaderName::from_bytes(
            named(spec, "header")
                .unwrap_or("x-api-key")
                .trim()
                .to_ascii_lowercase()
                .as_bytes(),
        )
        .map_err(|e| arg_error(spec, e.to_string()))?;
        Ok(ApiKeyAuth {
            keys,
            header,
            query: named(spec, "query").map(str::to_owned),
            identity_headers: identity_headers(spec, "identity-headers", &[("sub", "X-Consumer")])?,
            hide_credentials: flag(spec, "hide-credentials", true)?,
            challenge: challenge(spec, "ApiKey")?,
        })
    }

    pub fn authenticate(&self, parts: &http::request::Parts) -> Result<Principal, Rejection> {
        let presented = parts
            .headers
            .get(&self.header)
            .map(HeaderValue::as_bytes)
            .or_else(|| {
                let name = self.query.as_deref()?;
                parts
                    .uri
                    .query()?
                    .split('&')
                    .find_map(|p| p.strip_prefix(name)?.strip_prefix('=').map(str::as_bytes))
            });
        let Some(presented) = presented.filter(|k| !k.is_empty()) else {
            return Err(Rejection::unauthorized(
                "missing_api_key",
                "an API key is required",
                &self.challenge,
            ));
        };
        let digest = sha(presented);
        // Every key is compared, so timing does not reveal which one nearly matched.
        let mut found = None;
        for (consumer, key) in &self.keys {
            if constant_time_eq(key, &digest) && found.is_none() {
                found = Some(consumer);
            }
        }
        match found {
            Some(c) => Ok(Principal {
                subject: Some(c.clone()),
                claims: Default::default(),
            }),
            None => Err(Rejection::unauthorized(
                "invalid_api_key",
                "the API key is not valid",
                &self.challenge,
            )),
        }
    }
}

/// A compiled `BasicAuth` filter: users as `name:password`, the password plain, `{noop}plain` or
/// `{sha256}hex` (Spring Security's prefixes).
#[derive(Debug)]
pub struct BasicAuth {
    users: Vec<(String, Sha)>,
    pub(super) identity_headers: Vec<(String, HeaderName)>,
    pub(super) hide_credentials: bool,
    challenge: HeaderValue,
}

impl BasicAuth {
    pub fn compile(spec: &Spec) -> Result<BasicAuth, FilterError> {
        let users = entries(spec, "users", "users-file")?
            .iter()
            .map(|e| {
                let (user, pass) = e.split_once(':').ok_or_else(|| {
                    arg_error(
                        spec,
                        format!(
                            "users are name:password, not `{}`",
                            e.split(':').next().unwrap_or("")
                        ),
                    )
                })?;
                let digest = if let Some(hex) = pass.strip_prefix("{sha256}") {
                    let mut d = [0u8; 32];
                    let bytes = hex.trim().as_bytes();
                    if bytes.len() != 64 {
                        return Err(arg_error(
                            spec,
                            format!("user `{user}`: {{sha256}} wants 64 hex digits"),
                        ));
                    }
                    for (i, pair) in bytes.chunks(2).enumerate() {
                        let s = std::str::from_utf8(pair).unwrap_or("");
                        d[i] = u8::from_str_radix(s, 16).map_err(|_| {
                            arg_error(spec, format!("user `{user}`: {{sha256}} wants hex digits"))
                        })?;
                    }
                    d
                } else {
                    sha(pass.strip_prefix("{noop}").unwrap_or(pass).as_bytes())
                };
                Ok((user.trim().to_owned(), digest))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if users.is_empty() {
            return Err(arg_error(
                spec,
                "give `users` (name:password, …) or `users-file`",
            ));
        }
        Ok(BasicAuth {
            users,
            identity_headers: identity_headers(
                spec,
                "identity-headers",
                &[("sub", "X-Auth-User")],
            )?,
            hide_credentials: flag(spec, "hide-credentials", true)?,
            challenge: challenge(spec, "Basic")?,
        })
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Rejection> {
        let missing = || {
            Rejection::unauthorized(
                "missing_credentials",
                "basic credentials are required",
                &self.challenge,
            )
        };
        let raw = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(missing)?;
        let encoded = raw
            .split_once(' ')
            .filter(|(s, _)| s.eq_ignore_ascii_case("basic"))
            .map(|(_, c)| c.trim())
            .ok_or_else(missing)?;
        let bad = || {
            Rejection::unauthorized(
                "invalid_credentials",
                "user name or password is wrong",
                &self.challenge,
            )
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, pass) = text.split_once(':').ok_or_else(bad)?;
        let digest = sha(pass.as_bytes());
        let mut ok = false;
        for (name, d) in &self.users {
            ok |= constant_time_eq(name.as_bytes(), user.as_bytes()) & constant_time_eq(d, &digest);
        }
        if ok {
            Ok(Principal {
                subject: Some(user.to_owned()),
                claims: Default::default(),
            })
        } else {
            Err(bad())
        }
    }
}
