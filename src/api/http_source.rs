//! The HTTP source of a `Consumer` (the order REST endpoint): its port, who may call it (`auth`), how much
//! a caller may send and how fast (`limits`), TLS, and who may reach it on the network (`allowFrom`).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Serving HTTP: the order REST endpoint, authenticated and limited by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSource {
    /// Container and Service port. Default 8080.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,
    /// Who may call the endpoint. Default (also when omitted): API keys from the Secret
    /// `<consumer>-api-keys`; every request is refused with 401 until that Secret exists, and the
    /// Consumer's `Authenticated` condition says so. Anonymous access only with `{mode: none}`.
    #[serde(default)]
    pub auth: HttpAuth,
    /// Body size, time, concurrency and per-principal rate limits. Every field has a safe default.
    #[serde(default)]
    pub limits: HttpLimits,
    /// Serve HTTPS with the certificate of a `kubernetes.io/tls` Secret. Default: plain HTTP (terminate
    /// TLS at an Ingress or a mesh instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<HttpTls>,
    /// Who may open connections to the endpoint's port: NetworkPolicy peers (`podSelector`,
    /// `namespaceSelector`, `ipBlock`), rendered into the Consumer's NetworkPolicy. Default (omitted):
    /// pods of the Consumer's own namespace only. An empty list admits nobody. To expose the endpoint
    /// through an Ingress controller, list its namespace here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 50))]
    pub allow_from: Option<Vec<NetworkPolicyPeer>>,
}

impl Default for HttpSource {
    fn default() -> Self {
        Self {
            port: default_port(),
            auth: HttpAuth::default(),
            limits: HttpLimits::default(),
            tls: None,
            allow_from: None,
        }
    }
}

fn default_port() -> i32 {
    8080
}

/// Authentication of the order endpoint. With `mode: required` (the default) a request needs a valid API
/// key (`Authorization: Bearer <key>` or `X-API-Key: <key>`) or, when `jwt` is set, a valid JWT
/// (`Authorization: Bearer <jwt>`); anything else is answered 401 before its body is read. When neither
/// `apiKeys` nor `jwt` is set, `apiKeys` defaults to the Secret `<consumer>-api-keys`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.mode) || self.mode != 'none' || (!has(self.apiKeys) && !has(self.jwt))").message("spec.source.http.auth: mode none (anonymous access) cannot be combined with apiKeys or jwt"))]
#[serde(rename_all = "camelCase")]
pub struct HttpAuth {
    /// `required` (default): every request must authenticate. `none`: anyone who reaches the port may
    /// place orders, all as the one principal `anonymous:<namespace>/<consumer>`; the Consumer then
    /// carries the condition `Authenticated=False` (reason `AnonymousAccess`) and a Warning Event.
    #[serde(default)]
    pub mode: AuthMode,
    /// API keys, kept hashed in a Secret of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<ApiKeys>,
    /// JWT bearer tokens from an OIDC issuer, checked against its JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtAuth>,
}

/// Whether requests must authenticate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every request authenticates (API key or JWT).
    #[default]
    Required,
    /// Anonymous access: no authentication at all. Only for trusted networks and demos.
    None,
}

/// API keys kept hashed in a Secret. Each data entry of the Secret is one key: the entry's name is the
/// key's name (what you rotate or revoke, e.g. `ci-2026-12`), its value `sha256:<64 hex digits>` (the
/// SHA-256 of the whole key as the client sends it), optionally followed by ` principal=<name>`: the
/// principal the key authenticates as (default: the key's name; not starting with `jwt:`), qualified as
/// `key:<namespace>/<consumer>/<name>`. Give the new key of a rotation the same principal as the old
/// one, so the client keeps reading its orders; delete an entry to revoke the
/// key (workers stop accepting it within seconds, without a restart). `tributary apikey new --name ci`
/// makes a key and prints the entry. Keys are never stored or logged in clear.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeys {
    /// Name of the Secret, in this namespace. Default `<consumer>-api-keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

/// JWT bearer tokens from an OIDC issuer. A token is accepted when its signature verifies with a key of
/// the issuer's JWKS (by `kid`), its `alg` is one of `algorithms`, `iss` equals `issuer`, `aud` contains
/// one of `audiences`, `exp` is in the future (60 s leeway), `nbf` (if present) has passed, and every
/// `requiredClaims` entry matches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtAuth {
    /// The issuer (`iss`), an `https://` URL (plain `http://` only on the loopback address, for tests).
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.matches('^http://(127\\\\.0\\\\.0\\\\.1|localhost|\\\\[::1\\\\])(:[0-9]+)?(/.*)?$')").message("spec.source.http.auth.jwt.issuer must be an https:// URL (http:// only on the loopback address)"))]
    pub issuer: String,
    /// Accepted audiences (`aud`): a token must name at least one (1 to 10).
    #[schemars(length(min = 1, max = 10))]
    pub audiences: Vec<String>,
    /// The JWKS URL. Default: `jwks_uri` of the issuer's `/.well-known/openid-configuration`. Same
    /// https rule as `issuer`. Keys are cached, fetched again for an unknown `kid` (at most every 10 s)
    /// and every 10 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.matches('^http://(127\\\\.0\\\\.0\\\\.1|localhost|\\\\[::1\\\\])(:[0-9]+)?(/.*)?$')").message("spec.source.http.auth.jwt.jwksUri must be an https:// URL (http:// only on the loopback address)"))]
    pub jwks_uri: Option<String>,
    /// Claims a token must carry with these values (a string claim equal to the value, or an array
    /// claim containing it), e.g. `{scope: orders}`. Default none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 20))]
    pub required_claims: BTreeMap<String, String>,
    /// The claim naming the principal (who owns the orders placed with the token); the principal is
    /// `jwt:<issuer>#<value>`. Default `sub`.
    #[serde(default = "default_principal_claim")]
    #[schemars(length(min = 1, max = 128))]
    pub principal_claim: String,
    /// Signature algorithms accepted (asymmetric only: `alg: none` and HMAC are never accepted).
    /// Default `[RS256]`.
    #[serde(default = "default_algorithms")]
    #[schemars(length(min = 1, max = 9))]
    pub algorithms: Vec<JwtAlgorithm>,
}

fn default_principal_claim() -> String {
    "sub".to_owned()
}

fn default_algorithms() -> Vec<JwtAlgorithm> {
    vec![JwtAlgorithm::RS256]
}

/// An asymmetric JWS algorithm.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

/// Limits of the order endpoint, as API Gateway's payload cap, timeout and usage plans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpLimits {
    /// Largest request body in bytes (1024 to 10485760); a larger one is answered 413 before it is read.
    /// Default 65536 (64 KiB).
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 1024, max = 10_485_760))]
    pub max_body_bytes: i32,
    /// Longest a request may take, reading its body included (1 to 300 s); then 408. Default 29.
    #[serde(default = "default_request_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub request_timeout_seconds: i32,
    /// Requests one pod works on at once (1 to 10000); more are shed with 503 and `Retry-After`.
    /// Default 256.
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 1, max = 10_000))]
    pub max_concurrent_requests: i32,
    /// Steady requests per second one principal may make, per pod (1 to 100000); more get 429 with
    /// `Retry-After`. Default 50.
    #[serde(default = "default_rate")]
    #[schemars(range(min = 1, max = 100_000))]
    pub requests_per_second: i32,
    /// Requests one principal may make at once above the steady rate (token bucket size, 1 to 100000).
    /// Default 100.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1, max = 100_000))]
    pub burst: i32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            request_timeout_seconds: default_request_timeout(),
            max_concurrent_requests: default_max_concurrent(),
            requests_per_second: default_rate(),
            burst: default_burst(),
        }
    }
}

fn default_max_body_bytes() -> i32 {
    65_536
}
fn default_request_timeout() -> i32 {
    29
}
fn default_max_concurrent() -> i32 {
    256
}
fn default_rate() -> i32 {
    50
}
fn default_burst() -> i32 {
    100
}

/// HTTPS for the endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpTls {
    /// A `kubernetes.io/tls` Secret in this namespace (`tls.crt`, `tls.key`), mounted into the workers.
    pub secret_ref: TlsSecretRef,
}

/// A Secret by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct TlsSecretRef {
    /// Name of the Secret, in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}
