//! An OIDC issuer for the suite: an RSA key made with openssl, its JWKS served on 127.0.0.1, valid tokens,
//! and the forged ones an attacker would try.

use std::{
    path::Path,
    sync::{Arc, RwLock},
};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::JwkSet};
use serde_json::{Value, json};

/// The `kid` of the issuer's key.
pub(crate) const ISSUER_KID: &str = "issuer-key-1";
/// The audience the endpoint accepts.
pub(crate) const AUDIENCE: &str = "orders-api";

/// An RSA private key (PKCS#8 PEM) made with openssl, and its public key PEM.
fn rsa_key(dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    let (private_path, public_path) = (private.to_str().unwrap(), public.to_str().unwrap());
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        private_path,
    ]);
    run(&["pkey", "-in", private_path, "-pubout", "-out", public_path]);
    (std::fs::read(private).unwrap(), std::fs::read(public).unwrap())
}

/// Serves `/jwks` (whatever `jwks` holds at the time) on 127.0.0.1; returns the issuer URL.
async fn jwks_server(jwks: Arc<RwLock<JwkSet>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let jwks = jwks.read().unwrap().clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn jwk_of(key: &EncodingKey, kid: &str) -> jsonwebtoken::jwk::Jwk {
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The issuer: its URL, its signing key, an attacker's key, and its public key (for the HS256 attack).
pub(crate) struct Issuer {
    pub(crate) url: String,
    jwks: Arc<RwLock<JwkSet>>,
    dir: std::path::PathBuf,
    key: EncodingKey,
    other: EncodingKey,
    public_pem: Vec<u8>,
}

impl Issuer {
    /// Makes the keys under `dir` and serves the JWKS.
    pub(crate) async fn start(dir: &Path) -> Self {
        let (private, public_pem) = rsa_key(dir, "issuer");
        let (other, _) = rsa_key(dir, "attacker");
        let key = EncodingKey::from_rsa_pem(&private).unwrap();
        let jwks = Arc::new(RwLock::new(JwkSet {
            keys: vec![jwk_of(&key, ISSUER_KID)],
        }));
        let url = jwks_server(jwks.clone()).await;
        Self {
            url,
            jwks,
            dir: dir.to_owned(),
            key,
            other: EncodingKey::from_rsa_pem(&other).unwrap(),
            public_pem,
        }
    }

    /// Rotates: a new key with `kid` joins the JWKS; returns a valid token of `subject` signed with it.
    pub(crate) fn rotate(&self, kid: &str, subject: &str) -> String {
        let (private, _) = rsa_key(&self.dir, kid);
        let key = EncodingKey::from_rsa_pem(&private).unwrap();
        self.jwks.write().unwrap().keys.push(jwk_of(&key, kid));
        self.sign(&self.claims(subject), &key, kid)
    }

    fn claims(&self, subject: &str) -> Value {
        json!({"iss": self.url, "aud": AUDIENCE, "sub": subject, "exp": now() + 600, "iat": now()})
    }

    fn sign(&self, claims: &Value, key: &EncodingKey, kid: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    /// A valid token of `subject`.
    pub(crate) fn token(&self, subject: &str) -> String {
        self.sign(&self.claims(subject), &self.key, ISSUER_KID)
    }

    /// The attacks, each a token that must be refused.
    pub(crate) fn forged(&self) -> Vec<(&'static str, String)> {
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let with = |field: &str, value: Value| {
            let mut claims = self.claims("mallory");
            claims[field] = value;
            self.sign(&claims, &self.key, ISSUER_KID)
        };
        let mallory = self.claims("mallory");
        let unsigned = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": ISSUER_KID})),
            b64(&mallory)
        );
        let mut hs_header = Header::new(Algorithm::HS256);
        hs_header.kid = Some(ISSUER_KID.to_owned());
        let public_as_secret = EncodingKey::from_secret(&self.public_pem).unwrap();
        vec![
            ("an expired JWT", with("exp", json!(now() - 3600))),
            ("a JWT for another audience", with("aud", json!("another-api"))),
            (
                "a JWT from another issuer",
                with("iss", json!("http://127.0.0.1:1")),
            ),
            ("a JWT without a subject", with("sub", Value::Null)),
            (
                "a JWT signed with another key (issuer's kid)",
                self.sign(&mallory, &self.other, ISSUER_KID),
            ),
            (
                "a JWT signed with another key (unknown kid)",
                self.sign(&mallory, &self.other, "attacker"),
            ),
            ("a JWT with alg none", unsigned),
            (
                "a JWT signed HS256 with the issuer's public key",
                jsonwebtoken::encode(&hs_header, &mallory, &public_as_secret).unwrap(),
            ),
            ("a malformed bearer token", "not.a.jwt".to_owned()),
        ]
    }
}
