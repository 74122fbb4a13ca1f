//! JWT bearer tokens checked with `jsonwebtoken` against an OIDC issuer's JWKS: the algorithm pinned to the
//! configured asymmetric ones (`alg: none` does not even parse, HMAC is never allowed, so the issuer's
//! public key used as an HMAC secret cannot pass), issuer, audience, expiry, required claims, and the
//! principal from one claim. Keys are cached; an unknown `kid` fetches the JWKS again (at most once per
//! [`REFETCH_AT_MOST_EVERY`]), and a task refreshes it every [`REFRESH_EVERY`].

use std::{
    collections::BTreeMap,
    str::FromStr,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde_json::Value;

use super::config::{JwtConfig, is_allowed_key_url};

/// An unknown `kid` fetches the JWKS again at most this often (a flood of made-up kids must not become a
/// flood of requests to the issuer).
pub const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(10);
/// The JWKS is fetched again this often, so rotated keys are picked up before the old ones are removed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(600);
/// The principal of a JWT is `jwt:<issuer>#<claim value>`: never an API key's principal (`key:...`), and
/// never the same as a subject of another issuer.
pub const PRINCIPAL_PREFIX: &str = "jwt:";

/// Why a token was refused (logged; the client only ever sees 401).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Not a JWT, a bad signature, a wrong issuer/audience, expired, ...
    #[error("token refused: {0}")]
    Invalid(String),
    /// No key of the JWKS has the token's `kid`.
    #[error("no key with kid {0:?} in the issuer's JWKS")]
    UnknownKey(String),
    /// The JWKS could not be fetched.
    #[error("fetching the JWKS failed: {0}")]
    Fetch(String),
}

/// Checks `requiredClaims`: each must be a string equal to the value, or an array containing it.
pub fn check_claims(claims: &Value, required: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, wanted) in required {
        let ok = match claims.get(name) {
            Some(Value::String(s)) => {
                s == wanted || (name == "scope" && s.split(' ').any(|part| part == wanted))
            }
            Some(Value::Array(values)) => values.iter().any(|v| v.as_str() == Some(wanted)),
            _ => false,
        };
        if !ok {
            return Err(format!("claim {name} does not carry the required value"));
        }
    }
    Ok(())
}

/// The principal named by `claim` (a non-empty string of at most 256 characters) of a token from `issuer`.
pub fn principal_of(claims: &Value, claim: &str, issuer: &str) -> Result<String, String> {
    match claims.get(claim).and_then(Value::as_str) {
        Some(value) if !value.is_empty() && value.len() <= 256 => {
            Ok(format!("{PRINCIPAL_PREFIX}{issuer}#{value}"))
        }
        _ => Err(format!(
            "claim {claim} (the principal) is missing or not a short string"
        )),
    }
}

/// The validation of `config`: algorithms, issuer, audiences, `exp` required.
pub fn validation(config: &JwtConfig) -> Result<Validation, String> {
    let algorithms = config
        .algorithms
        .iter()
        .map(|a| Algorithm::from_str(a).map_err(|_| format!("auth.jwt.algorithms: unknown algorithm {a}")))
        .collect::<Result<Vec<_>, _>>()?;
    let first = *algorithms.first().ok_or("auth.jwt.algorithms is empty")?;
    let mut validation = Validation::new(first);
    validation.algorithms = algorithms;
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&config.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.validate_nbf = true;
    Ok(validation)
}

struct Cache {
    keys: JwkSet,
    fetched: Option<Instant>,
}

/// Verifies tokens of one issuer.
#[derive(Clone)]
pub struct JwtVerifier {
    config: Arc<JwtConfig>,
    validation: Arc<Validation>,
    cache: Arc<RwLock<Cache>>,
    fetching: Arc<tokio::sync::Mutex<()>>,
    last_attempt: Arc<Mutex<Option<Instant>>>,
    http: reqwest::Client,
}

impl JwtVerifier {
    /// A verifier for `config` (checked); the JWKS is fetched on first use.
    pub fn new(config: JwtConfig) -> Result<Self, String> {
        config.validate()?;
        let validation = validation(&config)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the JWKS client failed: {e}"))?;
        Ok(Self {
            config: Arc::new(config),
            validation: Arc::new(validation),
            cache: Arc::new(RwLock::new(Cache {
                keys: JwkSet { keys: Vec::new() },
                fetched: None,
            })),
            fetching: Arc::new(tokio::sync::Mutex::new(())),
            last_attempt: Arc::new(Mutex::new(None)),
            http,
        })
    }

    /// The principal of a valid token.
    pub async fn verify(&self, token: &str) -> Result<String, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| JwtError::Invalid(e.to_string()))?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(JwtError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.unwrap_or_default();
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refetch(false).await?;
                self.key(&kid).ok_or_else(|| JwtError::UnknownKey(kid.clone()))?
            }
        };
        // jsonwebtoken refuses a key unless every listed algorithm is of the key's family, so a list mixing
        // families (RS256 and ES256 during an issuer's migration) would refuse every token: check with the
        // token's own algorithm, which is one of those accepted.
        let mut validation = (*self.validation).clone();
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| JwtError::Invalid(e.to_string()))?;
        check_claims(&data.claims, &self.config.required_claims).map_err(JwtError::Invalid)?;
        principal_of(&data.claims, &self.config.principal_claim, &self.config.issuer)
            .map_err(JwtError::Invalid)
    }

    /// The cached key with `kid` (or the only key, for a token without `kid`).
    fn key(&self, kid: &str) -> Option<DecodingKey> {
        let cache = self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let jwk = if kid.is_empty() && cache.keys.keys.len() == 1 {
            cache.keys.keys.first()
        } else {
            cache.keys.find(kid)
        }?;
        DecodingKey::from_jwk(jwk).ok()
    }

    /// Fetches the JWKS again, unless one was tried within [`REFETCH_AT_MOST_EVERY`] (`force` skips that
    /// check, for the periodic refresh).
    pub async fn refetch(&self, force: bool) -> Result<(), JwtError> {
        let _one_at_a_time = self.fetching.lock().await;
        {
            let mut last = self
                .last_attempt
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !force && last.is_some_and(|t| t.elapsed() < REFETCH_AT_MOST_EVERY) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let keys = self.fetch().await?;
        tracing::info!(issuer = %self.config.issuer, keys = keys.keys.len(), "JWKS fetched");
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *cache = Cache {
            keys,
            fetched: Some(Instant::now()),
        };
        Ok(())
    }

    async fn fetch(&self) -> Result<JwkSet, JwtError> {
        let url = match &self.config.jwks_uri {
            Some(url) => url.clone(),
            None => self.discover().await?,
        };
        self.get_json::<JwkSet>(&url).await
    }

    async fn discover(&self) -> Result<String, JwtError> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&url).await?;
        if !is_allowed_key_url(&discovery.jwks_uri) {
            return Err(JwtError::Fetch(
                "the discovery document's jwks_uri is not https".into(),
            ));
        }
        Ok(discovery.jwks_uri)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, JwtError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| JwtError::Fetch(e.without_url().to_string()))?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| JwtError::Fetch(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| JwtError::Fetch(format!("not a JWKS document: {e}")))
    }

    /// Fetches the JWKS every [`REFRESH_EVERY`] (and once now), until dropped.
    pub async fn refresh(self) {
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        loop {
            tick.tick().await;
            if let Err(error) = self.refetch(true).await {
                let age = self
                    .cache
                    .read()
                    .ok()
                    .and_then(|c| c.fetched)
                    .map(|t| t.elapsed().as_secs());
                tracing::warn!(issuer = %self.config.issuer, %error, cached_age_seconds = ?age, "JWKS refresh failed; keeping the cached keys");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn required_claims_match_strings_arrays_and_scopes() {
        let claims =
            json!({"sub": "alice", "groups": ["a", "orders"], "scope": "read orders:write", "tier": "gold"});
        let required = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        check_claims(&claims, &required(&[("groups", "orders"), ("tier", "gold")])).unwrap();
        check_claims(&claims, &required(&[("scope", "orders:write")])).unwrap();
        for bad in [
            ("groups", "admin"),
            ("tier", "silver"),
            ("missing", "x"),
            ("sub", "ali"),
        ] {
            let error = check_claims(&claims, &required(&[bad])).unwrap_err();
            assert!(error.contains(bad.0), "{error}");
        }
    }

    #[test]
    fn the_principal_comes_from_the_claim_and_is_prefixed() {
        let claims = json!({"sub": "alice", "email": "a@x", "n": 7, "empty": ""});
        let issuer = "https://id.example";
        assert_eq!(
            principal_of(&claims, "sub", issuer).unwrap(),
            "jwt:https://id.example#alice"
        );
        assert_eq!(
            principal_of(&claims, "email", issuer).unwrap(),
            "jwt:https://id.example#a@x"
        );
        for bad in ["n", "empty", "missing"] {
            assert!(principal_of(&claims, bad, issuer).unwrap_err().contains(bad));
        }
    }

    #[test]
    fn the_validation_pins_algorithms_issuer_and_audience() {
        let config = JwtConfig {
            algorithms: vec!["RS256".into(), "ES256".into()],
            ..JwtConfig::for_issuer("https://issuer.example", "orders")
        };
        let v = validation(&config).unwrap();
        assert_eq!(v.algorithms, [Algorithm::RS256, Algorithm::ES256]);
        assert!(!v.algorithms.contains(&Algorithm::HS256));
        assert!(v.required_spec_claims.contains("exp") && v.required_spec_claims.contains("aud"));
        assert!(
            JwtVerifier::new(JwtConfig {
                algorithms: vec!["HS256".into()],
                ..config
            })
            .is_err()
        );
    }
}
