//! `JwtAuth`: bearer tokens signed with HS256, RS256 or ES256 (keys inline, from PEM files or a JWKS
//! file), with `exp`, `nbf`, `iss` and `aud` checked and required claims enforced.

use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{Principal, Rejection, arg_error, flag, identity_headers, named, named_list};
use crate::definition::Spec;
use crate::filter::FilterError;

#[derive(Debug)]
struct Key {
    kid: Option<String>,
    key: DecodingKey,
}

/// A compiled `JwtAuth` filter.
#[derive(Debug)]
pub struct JwtAuth {
    keys: Vec<Key>,
    algorithms: Vec<Algorithm>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway_secs: u64,
    /// `claim=value`: the claim must equal the value, or contain it (arrays, space-separated scopes).
    required: Vec<(String, String)>,
    pub(super) header: HeaderName,
    pub(super) claim_headers: Vec<(String, HeaderName)>,
    pub(super) hide_credentials: bool,
    challenge: HeaderValue,
    invalid_challenge: HeaderValue,
}

fn read(spec: &Spec, path: &str) -> Result<Vec<u8>, FilterError> {
    std::fs::read(path).map_err(|e| arg_error(spec, format!("read `{path}`: {e}")))
}

/// A PEM public key of any supported family.
fn pem_key(spec: &Spec, pem: &[u8]) -> Result<DecodingKey, FilterError> {
    DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
        .map_err(|e| {
            arg_error(
                spec,
                format!("public key is not an RSA, EC or Ed25519 PEM: {e}"),
            )
        })
}

fn default_algorithm(family: AlgorithmFamily) -> Algorithm {
    match family {
        AlgorithmFamily::Hmac => Algorithm::HS256,
        AlgorithmFamily::Rsa => Algorithm::RS256,
        AlgorithmFamily::Ec => Algorithm::ES256,
        AlgorithmFamily::Ed => Algorithm::EdDSA,
    }
}

impl JwtAuth {
    pub fn compile(spec: &Spec) -> Result<JwtAuth, FilterError> {
        let mut keys = Vec::new();
        if let Some(s) = named(spec, "secret") {
            let key = DecodingKey::from_secret(s.as_bytes())
                .map_err(|e| arg_error(spec, e.to_string()))?;
            keys.push(Key { kid: None, key });
        }
        if let Some(s) = named(spec, "secret-base64") {
            let key = DecodingKey::from_base64_secret(s.trim())
                .map_err(|e| arg_error(spec, format!("`secret-base64`: {e}")))?;
            keys.push(Key { kid: None, key });
        }
        if let Some(pem) = named(spec, "public-key") {
            keys.push(Key {
                kid: named(spec, "kid").map(str::to_owned),
                key: pem_key(spec, pem.as_bytes())?,
            });
        }
        for path in named_list(spec, "public-key-file") {
            keys.push(Key {
                kid: named(spec, "kid").map(str::to_owned),
                key: pem_key(spec, &read(spec, path)?)?,
            });
        }
        for path in named_list(spec, "jwks-file") {
            let set: JwkSet = serde_json::from_slice(&read(spec, path)?)
                .map_err(|e| arg_error(spec, format!("`{path}` is not a JWKS document: {e}")))?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk).map_err(|e| {
                    arg_error(spec, format!("`{path}`: key {:?}: {e}", jwk.common.key_id))
                })?;
                keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    key,
                });
            }
        }
        if keys.is_empty() {
            return Err(arg_error(
                spec,
                "give a key: `secret`, `secret-base64`, `public-key`, `public-key-file` or `jwks-file`",
            ));
        }
        let algorithms: Vec<Algorithm> = match named_list(spec, "algorithms") {
            list if list.is_empty() => {
                let mut v: Vec<Algorithm> = keys
                    .iter()
                    .map(|k| default_algorithm(k.key.family()))
                    .collect();
                v.dedup();
                v
            }
            list => list
                .iter()
                .map(|a| {
                    a.parse::<Algorithm>()
                        .map_err(|_| arg_error(spec, format!("unknown algorithm `{a}`")))
                })
                .collect::<Result<_, _>>()?,
        };
        for a in &algorithms {
            if !keys.iter().any(|k| k.key.family() == a.family()) {
                return Err(arg_error(
                    spec,
                    format!("algorithm {a:?} has no key of its kind"),
                ));
            }
        }
        let required = named_list(spec, "required-claims")
            .into_iter()
            .map(|r| {
                r.split_once('=')
                    .map(|(c, v)| (c.trim().to_owned(), v.trim().to_owned()))
                    .ok_or_else(|| {
                        arg_error(
                            spec,
                            format!("`required-claims` entries are claim=value, not `{r}`"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        let leeway_secs = match named(spec, "leeway") {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| arg_error(spec, format!("`leeway` is seconds, not `{v}`")))?,
            None => 30,
        };
        let header = match named(spec, "header") {
            Some(h) => HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes())
                .map_err(|e| arg_error(spec, e.to_string()))?,
            None => header::AUTHORIZATION,
        };
        let realm = named(spec, "realm").unwrap_or("keel");
        let challenge = HeaderValue::from_str(&format!("Bearer realm=\"{realm}\""))
            .map_err(|e| arg_error(spec, format!("`realm`: {e}")))?;
        let invalid_challenge = HeaderValue::from_str(&format!(
            "Bearer realm=\"{realm}\", error=\"invalid_token\""
        ))
        .map_err(|e| arg_error(spec, format!("`realm`: {e}")))?;
        Ok(JwtAuth {
            keys,
            algorithms,
            issuers: named_list(spec, "issuer")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            audiences: named_list(spec, "audience")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            leeway_secs,
            required,
            header,
            claim_headers: identity_headers(
                spec,
                "claims-to-headers",
                &[("sub", "X-Auth-Subject")],
            )?,
            hide_credentials: flag(spec, "hide-credentials", false)?,
            challenge,
            invalid_challenge,
        })
    }

    fn token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let raw = headers.get(&self.header)?.to_str().ok()?.trim();
        let bearer = raw
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        match bearer {
            Some(t) => Some(t),
            // A custom header may carry the bare token.
            None if self.header != header::AUTHORIZATION => Some(raw),
            None => None,
        }
        .filter(|t| !t.is_empty())
    }

    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Principal, Rejection> {
        let invalid =
            |msg: String| Rejection::unauthorized("invalid_token", msg, &self.invalid_challenge);
        let Some(token) = self.token(headers) else {
            return Err(Rejection::unauthorized(
                "missing_token",
                "a bearer token is required",
                &self.challenge,
            ));
        };
        let head = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("malformed token: {e}")))?;
        if !self.algorithms.contains(&head.alg) {
            return Err(invalid(format!("algorithm {:?} is not accepted", head.alg)));
        }
        let mut validation = Validation::new(head.alg);
        // exp/nbf are checked below against the caller's clock; iss/aud by the library.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let mut required_spec: Vec<&str> = Vec::new();
        if self.issuers.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&self.issuers);
            required_spec.push("iss");
        }
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
            required_spec.push("aud");
        }
        validation.set_required_spec_claims(&required_spec);
        let candidates = self.keys.iter().filter(|k| {
            k.key.family() == head.alg.family()
                && match (&head.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        });
        let mut last = None;
        let mut claims: Option<Map<String, Value>> = None;
        for k in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let claims = match (claims, last) {
            (Some(c), _) => c,
            (None, Some(e)) => return Err(invalid(format!("token rejected: {e}"))),
            (None, None) => {
                return Err(invalid(format!(
                    "no key for kid {:?}",
                    head.kid.unwrap_or_default()
                )));
            }
        };
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match claims.get("exp").map(Value::as_u64) {
            None => return Err(invalid("token has no `exp` claim".into())),
            Some(None) => return Err(invalid("`exp` is not a number".into())),
            Some(Some(exp)) if now > exp.saturating_add(self.leeway_secs) => {
                return Err(invalid("token has expired".into()));
            }
            Some(Some(_)) => {}
        }
        match claims.get("nbf").map(Value::as_u64) {
            Some(None) => return Err(invalid("`nbf` is not a number".into())),
            Some(Some(nbf)) if now.saturating_add(self.leeway_secs) < nbf => {
                return Err(invalid("token is not valid yet".into()));
            }
            _ => {}
        }
        for (claim, want) in &self.required {
            if !claim_contains(claims.get(claim), want) {
                return Err(Rejection::forbidden(
                    "insufficient_claims",
                    format!("claim `{claim}` must include `{want}`"),
                ));
            }
        }
        Ok(Principal {
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            claims,
        })
    }
}

fn claim_contains(v: Option<&Value>, want: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == want || s.split(' ').any(|p| p == want),
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(want)),
        Some(Value::Bool(b)) => b.to_string() == want,
        Some(Value::Number(n)) => n.to_string() == want,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    fn auth(args: &[(&str, &str)]) -> JwtAuth {
        JwtAuth::compile(&Spec {
            name: "JwtAuth".into(),
            args: args
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
        .unwrap()
    }

    fn bearer(claims: Value, secret: &str) -> HeaderMap {
        let t = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {t}").parse().unwrap());
        h
    }

    #[test]
    fn checks_times_against_the_given_clock() {
        let a = auth(&[("secret", "s3cret"), ("leeway", "0")]);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let h = bearer(json!({"sub": "alice", "exp": 1_100, "nbf": 950}), "s3cret");
        assert_eq!(
            a.authenticate(&h, t0).unwrap().subject.as_deref(),
            Some("alice")
        );
        let late = a
            .authenticate(&h, t0 + Duration::from_secs(101))
            .unwrap_err();
        assert!(late.message.contains("expired"), "{late:?}");
        let early = a
            .authenticate(&h, t0 - Duration::from_secs(51))
            .unwrap_err();
        assert!(early.message.contains("not valid yet"), "{early:?}");
        let forged = bearer(json!({"sub": "alice", "exp": 1_100}), "guess");
        assert_eq!(
            a.authenticate(&forged, t0).unwrap_err().reason,
            "invalid_token"
        );
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let a = auth(&[("secret", "s3cret")]);
        let mut h = HeaderMap::new();
        // {"alg":"none"}.{"sub":"alice","exp":9999999999}.
        h.insert(
            "authorization",
            "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0."
                .parse()
                .unwrap(),
        );
        assert!(a.authenticate(&h, SystemTime::now()).is_err());
    }

    #[test]
    fn required_claims_give_403() {
        let a = auth(&[("secret", "k"), ("required-claims", "scope=admin")]);
        let exp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        let ok = bearer(json!({"sub": "a", "exp": exp, "scope": "read admin"}), "k");
        assert!(a.authenticate(&ok, SystemTime::now()).is_ok());
        let no = bearer(json!({"sub": "a", "exp": exp, "scope": "read"}), "k");
        assert_eq!(
            a.authenticate(&no, SystemTime::now()).unwrap_err().status,
            403
        );
    }
}
