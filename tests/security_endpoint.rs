//! The attack suite against a running order endpoint: the real `tributary worker` process (order-ack)
//! against moto, with API keys in a directory as the mounted Secret gives them and JWTs from an issuer
//! whose JWKS this test serves on 127.0.0.1. Every attempt without valid credentials is 401 (no key, a
//! wrong key, a revoked key, an expired token, a wrong audience or issuer, another signing key, `alg:
//! none`, HS256 signed with the public key); another principal's order is 404; a 10 MB body is 413
//! without the worker's memory growing by it; a stalled body times out; 1,000 concurrent requests over
//! the limits get 429/503 and the worker serves on; stalled bodies over the concurrency limit are shed;
//! HTTPS is served from a TLS Secret's files; no response body names an ARN, a table, a queue or the
//! account. The counts and figures are printed (`--nocapture`).
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::JwkSet};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tributary::worker::orders::security::api_keys::new_key;

const ISSUER_KID: &str = "issuer-key-1";
const AUDIENCE: &str = "orders-api";
const TIMEOUT_MILLIS: u64 = 2000;
const MOTO_ACCOUNT: &str = "123456789012";

/// Requests tried and answered as expected, and every response body (for the leak scan).
#[derive(Default)]
struct Tally {
    tried: usize,
    expected: usize,
    failures: Vec<String>,
    bodies: Vec<String>,
}

impl Tally {
    fn record(&mut self, what: &str, ok: bool, detail: String) {
        self.tried += 1;
        if ok {
            self.expected += 1;
        } else {
            self.failures.push(format!("{what}: {detail}"));
        }
    }
}

type Shared = Arc<Mutex<Tally>>;

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
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        private.to_str().unwrap(),
    ]);
    run(&[
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (std::fs::read(private).unwrap(), std::fs::read(public).unwrap())
}

/// Serves `/jwks` on 127.0.0.1; returns the issuer URL.
async fn jwks_server(jwks: JwkSet) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

struct Issuer {
    url: String,
    key: EncodingKey,
    other: EncodingKey,
    public_pem: Vec<u8>,
}

impl Issuer {
    fn claims(&self, subject: &str) -> Value {
        json!({"iss": self.url, "aud": AUDIENCE, "sub": subject, "exp": now() + 600, "iat": now()})
    }

    fn sign(&self, claims: &Value, key: &EncodingKey, kid: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn token(&self, subject: &str) -> String {
        self.sign(&self.claims(subject), &self.key, ISSUER_KID)
    }

    /// The attacks, each a token that must be refused.
    fn forged(&self) -> Vec<(&'static str, String)> {
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let mut expired = self.claims("mallory");
        expired["exp"] = json!(now() - 3600);
        let mut audience = self.claims("mallory");
        audience["aud"] = json!("another-api");
        let mut issuer = self.claims("mallory");
        issuer["iss"] = json!("http://127.0.0.1:1");
        let unsigned = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": ISSUER_KID})),
            b64(&self.claims("mallory"))
        );
        let mut hs_header = Header::new(Algorithm::HS256);
        hs_header.kid = Some(ISSUER_KID.to_owned());
        let hmac_with_public = jsonwebtoken::encode(
            &hs_header,
            &self.claims("mallory"),
            &EncodingKey::from_secret(&self.public_pem).unwrap(),
        )
        .unwrap();
        vec![
            ("an expired JWT", self.sign(&expired, &self.key, ISSUER_KID)),
            (
                "a JWT for another audience",
                self.sign(&audience, &self.key, ISSUER_KID),
            ),
            (
                "a JWT from another issuer",
                self.sign(&issuer, &self.key, ISSUER_KID),
            ),
            (
                "a JWT signed with another key (issuer's kid)",
                self.sign(&self.claims("mallory"), &self.other, ISSUER_KID),
            ),
            (
                "a JWT signed with another key (unknown kid)",
                self.sign(&self.claims("mallory"), &self.other, "attacker"),
            ),
            ("a JWT with alg none", unsigned),
            (
                "a JWT signed HS256 with the issuer's public key",
                hmac_with_public,
            ),
            ("a malformed bearer token", "not.a.jwt".to_owned()),
        ]
    }
}

async fn issuer(dir: &Path) -> Issuer {
    let (private, public_pem) = rsa_key(dir, "issuer");
    let (other, _) = rsa_key(dir, "attacker");
    let key = EncodingKey::from_rsa_pem(&private).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(ISSUER_KID.to_owned());
    let url = jwks_server(JwkSet { keys: vec![jwk] }).await;
    Issuer {
        url,
        key,
        other: EncodingKey::from_rsa_pem(&other).unwrap(),
        public_pem,
    }
}

/// (VmRSS, VmHWM) of `pid` in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Endpoint {
    base: String,
    port: u16,
    worker: std::process::Child,
    key_dir: PathBuf,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.worker.kill();
        let _ = self.worker.wait();
    }
}

/// Starts an order-ack worker on `table` and `topic_arn` with API keys from `key_dir` and JWTs from
/// `issuer`.
fn start(
    work: &Path,
    name: &str,
    table: &str,
    topic_arn: &str,
    issuer: &str,
    tls: Option<Value>,
) -> Endpoint {
    let port = common::free_port();
    let key_dir = work.join(format!("{name}-keys"));
    std::fs::create_dir_all(&key_dir).unwrap();
    let mut config = json!({
        "consumer": {"namespace": "security", "name": name},
        "processor": "order-ack",
        "source": {"http": {
            "listen": format!("127.0.0.1:{port}"),
            "auth": {
                "apiKeys": {"dir": key_dir, "reloadSeconds": 1},
                "jwt": {"issuer": issuer, "audiences": [AUDIENCE], "jwksUri": format!("{issuer}/jwks")},
            },
            "limits": {
                "maxBodyBytes": 65536, "requestTimeoutMillis": TIMEOUT_MILLIS,
                "maxConcurrentRequests": 64, "requestsPerSecond": 20, "burst": 40,
            },
        }},
        "sink": {"table": table, "topicArn": topic_arn},
        "metricsListen": format!("127.0.0.1:{}", common::free_port()),
    });
    if let Some(tls) = tls {
        config["source"]["http"]["tls"] = tls;
    }
    let path = work.join(format!("{name}.yaml"));
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let worker = common::spawn_worker(&path, &work.join(format!("{name}.log")));
    Endpoint {
        base: format!("http://127.0.0.1:{port}"),
        port,
        worker,
        key_dir,
    }
}

/// A key of principal `principal` in the endpoint's key directory, named `name`.
fn add_key(endpoint: &Endpoint, name: &str, principal: &str) -> String {
    let key = new_key(Some(principal)).unwrap();
    std::fs::write(endpoint.key_dir.join(name), &key.entry).unwrap();
    key.key
}

fn order(key: &str) -> Value {
    json!({
        "customerId": "c-1",
        "items": [{"sku": "sku-a", "quantity": 1, "unitPriceCents": 100}],
        "region": "eu-west",
        "delivery": "standard",
        "idempotencyKey": key,
    })
}

/// Sends a request and records whether its status was `want`.
async fn expect(
    tally: &Shared,
    what: &str,
    request: reqwest::RequestBuilder,
    want: u16,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut tally = tally.lock().unwrap();
    tally.record(what, status == want, format!("{status} {text}"));
    tally.bodies.push(text);
    (status, headers, body)
}

/// Raw HTTP/1.1: `head`, then `body` written from another task (errors ignored: the server may close
/// early), then the status code read back and how long it took.
async fn raw(port: u16, head: String, body: Option<(usize, bool)>) -> (u16, Duration, String) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    write.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        let Some((total, chunked)) = body else {
            return write; // keep the connection open without sending a body: a stalled client
        };
        let block = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = block.len().min(total - sent);
            let frame = if chunked {
                [
                    format!("{n:x}\r\n").into_bytes(),
                    block[..n].to_vec(),
                    b"\r\n".to_vec(),
                ]
                .concat()
            } else {
                block[..n].to_vec()
            };
            if write.write_all(&frame).await.is_err() {
                break;
            }
            sent += n;
        }
        if chunked {
            let _ = write.write_all(b"0\r\n\r\n").await;
        }
        write
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read_all).await;
    let took = started.elapsed();
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, took, text)
}

async fn wait_serving(http: &reqwest::Client, endpoint: &Endpoint, key: &str) {
    common::eventually("the order endpoint", Duration::from_secs(30), || {
        let request = http
            .get(format!("{}/orders/o-none", endpoint.base))
            .bearer_auth(key);
        async move { (request.send().await.ok()?.status() == 404).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_order_endpoint_withstands_the_attack_suite() {
    let aws = common::aws_config().await;
    let work = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/security")
        .join(common::unique("run"));
    std::fs::create_dir_all(&work).unwrap();
    let table_name = common::unique("secure-orders");
    let table =
        tributary::cloud::aws::OrderTable::new(aws_sdk_dynamodb::Client::new(&aws), table_name.clone());
    table.ensure().await.unwrap();
    let topic_name = common::unique("secure-events");
    let topic_arn = aws_sdk_sns::Client::new(&aws)
        .create_topic()
        .name(&topic_name)
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let issuer = issuer(&work).await;
    let mut endpoint = start(&work, "order-ack", &table_name, &topic_arn, &issuer.url, None);
    let alice = add_key(&endpoint, "alice", "alice");
    let bob = add_key(&endpoint, "bob-2026", "bob");
    let carol = add_key(&endpoint, "carol", "carol");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    wait_serving(&http, &endpoint, &alice).await;
    let tally: Shared = Arc::default();
    let base = endpoint.base.clone();
    let post = |body: &Value| http.post(format!("{base}/orders")).json(body);
    let get = |id: &str| http.get(format!("{base}/orders/{id}"));

    // Authentication: refused before anything else, with WWW-Authenticate.
    let (_, headers, body) = expect(&tally, "POST without credentials", post(&order("a")), 401).await;
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(body["error"], "unauthorized");
    assert!(
        body["requestId"]
            .as_str()
            .is_some_and(|id| headers["x-request-id"] == id)
    );
    expect(&tally, "GET without credentials", get("o-none"), 401).await;
    let wrong = new_key(None).unwrap().key;
    expect(
        &tally,
        "a wrong key (Bearer)",
        post(&order("a")).bearer_auth(&wrong),
        401,
    )
    .await;
    expect(
        &tally,
        "a wrong key (X-API-Key)",
        post(&order("a")).header("x-api-key", &wrong),
        401,
    )
    .await;
    expect(
        &tally,
        "Basic credentials",
        post(&order("a")).basic_auth("alice", Some(&alice)),
        401,
    )
    .await;
    for (what, token) in issuer.forged() {
        expect(&tally, what, post(&order("a")).bearer_auth(&token), 401).await;
    }

    // Authorization: a principal reads its own orders only; idempotency keys are per principal.
    let (_, _, placed) = expect(
        &tally,
        "alice places an order",
        post(&order("k1")).bearer_auth(&alice),
        202,
    )
    .await;
    let alice_order = placed["orderId"].as_str().unwrap().to_owned();
    expect(
        &tally,
        "alice reads her order",
        get(&alice_order).header("x-api-key", &alice),
        200,
    )
    .await;
    let (_, _, hidden) = expect(
        &tally,
        "bob reads alice's order",
        get(&alice_order).bearer_auth(&bob),
        404,
    )
    .await;
    let (_, _, missing) = expect(
        &tally,
        "bob reads a missing order",
        get("o-missing").bearer_auth(&bob),
        404,
    )
    .await;
    assert_eq!(
        hidden["error"], missing["error"],
        "another's order looks exactly like a missing one"
    );
    assert_eq!(
        hidden.as_object().unwrap().len(),
        missing.as_object().unwrap().len()
    );
    let (_, _, bobs) = expect(
        &tally,
        "bob reuses alice's idempotency key",
        post(&order("k1")).bearer_auth(&bob),
        202,
    )
    .await;
    assert_ne!(
        bobs["orderId"], placed["orderId"],
        "idempotency keys are scoped per principal"
    );
    let jwt = issuer.token("dave");
    let (_, _, daves) = expect(
        &tally,
        "a valid JWT places an order",
        post(&order("k1")).bearer_auth(&jwt),
        202,
    )
    .await;
    let dave_order = daves["orderId"].as_str().unwrap().to_owned();
    expect(
        &tally,
        "the JWT principal reads its order",
        get(&dave_order).bearer_auth(&jwt),
        200,
    )
    .await;
    expect(
        &tally,
        "alice reads the JWT principal's order",
        get(&dave_order).bearer_auth(&alice),
        404,
    )
    .await;
    // An order recorded before principals were: nobody reads it.
    let legacy = tributary::worker::orders::model::OrderEvent::placed(
        "o-legacy",
        &serde_json::from_value(order("legacy")).unwrap(),
    );
    use tributary::worker::orders::store::OrderStore as _;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    table.create_order(&legacy, traceparent, None).await.unwrap();
    expect(
        &tally,
        "an order without a principal",
        get("o-legacy").bearer_auth(&alice),
        404,
    )
    .await;

    // Bad input: 400 naming the field.
    let mut bad = order("bad");
    bad["items"][0]["quantity"] = json!(0);
    let (_, _, refused) = expect(&tally, "an invalid order", post(&bad).bearer_auth(&alice), 400).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("items[0].quantity"),
        "{refused}"
    );

    // Revocation: the key works, its file is deleted (as the kubelet does when the Secret entry goes),
    // and within seconds it is refused, without a restart.
    expect(
        &tally,
        "carol's key before revocation",
        get("o-none").bearer_auth(&carol),
        404,
    )
    .await;
    std::fs::remove_file(endpoint.key_dir.join("carol")).unwrap();
    let revoked_at = Instant::now();
    common::eventually("the revoked key to be refused", Duration::from_secs(10), || {
        let request = get("o-none").bearer_auth(&carol);
        async move { (request.send().await.ok()?.status() == 401).then_some(()) }
    })
    .await;
    let revocation = revoked_at.elapsed();
    expect(
        &tally,
        "a revoked key",
        post(&order("r")).bearer_auth(&carol),
        401,
    )
    .await;
    let rotated = add_key(&endpoint, "alice-2027", "alice");
    common::eventually("the rotated key to work", Duration::from_secs(10), || {
        let request = get(&alice_order).bearer_auth(&rotated);
        async move { (request.send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;

    // The body cap: 413 before the body is buffered, by Content-Length and on a chunked stream.
    let pid = endpoint.worker.id();
    let (rss_before, _) = memory(pid);
    let auth = format!("Authorization: Bearer {alice}\r\n");
    let ten_mb = 10 * 1024 * 1024;
    let head = |extra: &str| {
        format!("POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}{extra}\r\n")
    };
    let (status, _, text) = raw(
        endpoint.port,
        head(&format!("Content-Length: {ten_mb}\r\n")),
        Some((ten_mb, false)),
    )
    .await;
    tally
        .lock()
        .unwrap()
        .record("a 10 MB body (Content-Length)", status == 413, text.clone());
    tally.lock().unwrap().bodies.push(text);
    let (status, _, text) = raw(
        endpoint.port,
        head("Transfer-Encoding: chunked\r\n"),
        Some((ten_mb, true)),
    )
    .await;
    tally
        .lock()
        .unwrap()
        .record("a 10 MB body (chunked)", status == 413, text.clone());
    tally.lock().unwrap().bodies.push(text);
    let (rss_after, _) = memory(pid);
    let growth = rss_after.saturating_sub(rss_before);
    assert!(growth < 5 * 1024, "RSS grew by {growth} KiB for a 10 MB body");
    let (status, _, _) = raw(
        endpoint.port,
        format!("POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: {ten_mb}\r\n\r\n"),
        Some((ten_mb, false)),
    )
    .await;
    tally.lock().unwrap().record(
        "a 10 MB body without credentials",
        status == 401,
        status.to_string(),
    );

    // A slow body: the headers and a few bytes, then nothing; the timeout answers.
    let (status, slow, text) = raw(
        endpoint.port,
        head("Content-Length: 1000\r\n") + "{\"customerId\":",
        None,
    )
    .await;
    tally
        .lock()
        .unwrap()
        .record("a stalled body", status == 408, text.clone());
    tally.lock().unwrap().bodies.push(text);
    let timeout = Duration::from_millis(TIMEOUT_MILLIS);
    assert!(
        slow >= timeout && slow < timeout + Duration::from_secs(2),
        "answered after {slow:?}"
    );

    // A flood: 1,000 requests at once from one principal, over its rate and the pod's concurrency.
    let flood_key = add_key(&endpoint, "flood", "flood");
    wait_serving(&http, &endpoint, &flood_key).await;
    let started = Instant::now();
    let requests = (0..1000).map(|i| {
        let request = get(&format!("o-flood-{i}")).bearer_auth(&flood_key);
        async move {
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response.headers().contains_key("retry-after");
                    (status, retry_after, response.text().await.unwrap_or_default())
                }
                Err(error) => (0, false, error.to_string()),
            }
        }
    });
    let answers = futures::future::join_all(requests).await;
    let flood_took = started.elapsed();
    let count = |s: u16| answers.iter().filter(|(status, _, _)| *status == s).count();
    let (ok, limited, flood_shed) = (count(404), count(429), count(503));
    for (status, retry_after, body) in &answers {
        let expected = matches!(status, 404) || (matches!(status, 429 | 503) && *retry_after);
        tally
            .lock()
            .unwrap()
            .record("a flood request", expected, format!("{status} {body}"));
        tally.lock().unwrap().bodies.push(body.clone());
    }
    assert!(
        limited > 0,
        "the rate limit answered 429: {ok} 404, {limited} 429, {flood_shed} 503"
    );
    assert!(
        ok <= 40 + 20 * (flood_took.as_secs() as usize + 1),
        "at most the burst and the rate: {ok}"
    );
    let (_, peak) = memory(pid);
    assert!(endpoint_alive(&mut endpoint), "the worker survived the flood");
    common::eventually(
        "the endpoint to serve after the flood",
        Duration::from_secs(10),
        || {
            let request = get(&alice_order).bearer_auth(&alice);
            async move { (request.send().await.ok()?.status() == 200).then_some(()) }
        },
    )
    .await;

    // Load shedding: stalled bodies from three principals (24 each, within their burst) want more than
    // the pod's 64 concurrency slots; those beyond are shed at once with 503 and Retry-After, and so is a
    // request arriving while the slots are held. Once the stalled ones time out the endpoint serves again.
    let mut heads = Vec::new();
    for name in ["hold-a", "hold-b", "hold-c"] {
        let key = add_key(&endpoint, name, name);
        wait_serving(&http, &endpoint, &key).await;
        heads.push(format!(
            "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\n{{"
        ));
    }
    let holders: Vec<_> = heads
        .iter()
        .flat_map(|head| (0..24).map(|_| tokio::spawn(raw(endpoint.port, head.clone(), None))))
        .collect();
    // While the slots are held (bounded by the timeout), a request of another principal is shed.
    let deadline = Instant::now() + Duration::from_millis(TIMEOUT_MILLIS);
    let mut probe_shed = None;
    while Instant::now() < deadline && probe_shed.is_none() {
        let response = get(&alice_order).bearer_auth(&rotated).send().await.unwrap();
        if response.status() == 503 {
            probe_shed = Some(response.headers().contains_key("retry-after"));
        }
        let text = response.text().await.unwrap_or_default();
        tally.lock().unwrap().bodies.push(text);
    }
    tally.lock().unwrap().record(
        "a request while every slot is held",
        probe_shed == Some(true),
        format!("{probe_shed:?}"),
    );
    let (mut held, mut shed) = (0, 0);
    for holder in holders {
        let (status, took, text) = holder.await.unwrap();
        match status {
            408 => held += 1,
            503 if text.contains("Retry-After") || text.contains("retry-after") => shed += 1,
            _ => {}
        }
        let ok = status == 408 && took >= Duration::from_millis(TIMEOUT_MILLIS) || status == 503;
        tally.lock().unwrap().record(
            "a stalled request over the concurrency limit",
            ok,
            format!("{status} {took:?}"),
        );
        tally.lock().unwrap().bodies.push(text);
    }
    assert!(held <= 64 && shed >= 72 - 64, "{held} held, {shed} shed");
    expect(
        &tally,
        "served again after the shedding",
        get(&alice_order).bearer_auth(&rotated),
        200,
    )
    .await;

    // Cloud failures: a worker whose table and topic do not exist answers without naming them.
    let missing_table = common::unique("no-such-table");
    let missing_topic = format!(
        "arn:aws:sns:us-east-1:{MOTO_ACCOUNT}:{}",
        common::unique("no-such-topic")
    );
    let broken = start(&work, "broken", &missing_table, &missing_topic, &issuer.url, None);
    let broken_key = add_key(&broken, "alice", "alice");
    wait_until_up(&http, &broken, &broken_key).await;
    let failing = http
        .post(format!("{}/orders", broken.base))
        .bearer_auth(&broken_key)
        .json(&order("x"));
    let response = failing.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    tally.lock().unwrap().record(
        "a cloud failure (missing table)",
        matches!(status, 500 | 503),
        format!("{status} {text}"),
    );
    tally.lock().unwrap().bodies.push(text);
    let response = http
        .get(format!("{}/orders/o-1", broken.base))
        .bearer_auth(&broken_key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    tally.lock().unwrap().record(
        "a cloud failure on GET",
        matches!(status, 500 | 503),
        format!("{status} {text}"),
    );
    tally.lock().unwrap().bodies.push(text);

    // TLS from a kubernetes.io/tls Secret's files (the test bed's certificate for 127.0.0.1): HTTPS with
    // the same authentication; plain HTTP on that port is not served.
    let ca = PathBuf::from(common::var("TESTBED_CA_FILE"));
    let pki = ca.parent().unwrap();
    let tls = json!({"certFile": pki.join("cosmos.crt"), "keyFile": pki.join("cosmos.key")});
    let secure = start(&work, "tls", &table_name, &topic_arn, &issuer.url, Some(tls));
    let tls_key = add_key(&secure, "alice", "alice");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let secure_base = format!("https://127.0.0.1:{}", secure.port);
    common::eventually("the HTTPS endpoint", Duration::from_secs(30), || {
        let request = https
            .get(format!("{secure_base}/orders/{alice_order}"))
            .bearer_auth(&tls_key);
        async move { (request.send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    let https_tally = &tally;
    expect(
        https_tally,
        "HTTPS without credentials",
        https.get(format!("{secure_base}/orders/o-none")),
        401,
    )
    .await;
    let plain = http
        .get(format!("http://127.0.0.1:{}/orders/o-none", secure.port))
        .bearer_auth(&tls_key)
        .send()
        .await;
    tally.lock().unwrap().record(
        "plain HTTP on the TLS port",
        plain
            .as_ref()
            .map_or(true, |r| !r.status().is_success() && r.status() != 404),
        format!("{:?}", plain.map(|r| r.status())),
    );

    // No body anywhere names an ARN, a table, a topic, a queue or the account.
    let tally = tally.lock().unwrap();
    let secrets = [
        "arn:",
        table_name.as_str(),
        missing_table.as_str(),
        topic_name.as_str(),
        MOTO_ACCOUNT,
        "queue",
        "amazonaws",
        &alice,
        &bob,
    ];
    let leaks: Vec<&String> = tally
        .bodies
        .iter()
        .filter(|b| secrets.iter().any(|s| b.contains(s)))
        .collect();
    println!(
        "security suite: {} requests tried, {} answered as expected; flood of 1000: {ok} served, {limited} 429, {flood_shed} 503 in {:.1}s; \
         peak RSS (VmHWM) {peak} KiB; RSS {rss_before} -> {rss_after} KiB across two 10 MB bodies (+{growth} KiB); \
         stalled body answered after {:.2}s (timeout {:.1}s); 72 stalled bodies: {held} held to the timeout, {shed} shed; revoked key refused after {:.1}s; {} bodies scanned, {} leaks",
        tally.tried,
        tally.expected,
        flood_took.as_secs_f64(),
        slow.as_secs_f64(),
        timeout.as_secs_f64(),
        revocation.as_secs_f64(),
        tally.bodies.len(),
        leaks.len(),
    );
    assert!(leaks.is_empty(), "leaked: {leaks:?}");
    assert!(
        tally.failures.is_empty(),
        "{} unexpected answers: {:#?}",
        tally.failures.len(),
        tally.failures
    );
}

fn endpoint_alive(endpoint: &mut Endpoint) -> bool {
    matches!(endpoint.worker.try_wait(), Ok(None))
}

/// Waits until the endpoint answers an authenticated request at all (a broken one answers 5xx).
async fn wait_until_up(http: &reqwest::Client, endpoint: &Endpoint, key: &str) {
    common::eventually("the broken endpoint to answer", Duration::from_secs(30), || {
        let request = http
            .get(format!("{}/orders/o-none", endpoint.base))
            .bearer_auth(key);
        async move {
            let status = request.send().await.ok()?.status().as_u16();
            (status != 401).then_some(())
        }
    })
    .await;
}

/// `tributary apikey new`: the key on stdout, once; on stderr the Secret entry, which holds only the hash
/// and authenticates the key as the principal given.
#[test]
fn the_apikey_command_prints_the_key_once_and_its_hashed_entry() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["apikey", "new", "--name", "ci-2027", "--principal", "ci"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let help = String::from_utf8(out.stderr).unwrap();
    let entry = help
        .lines()
        .find_map(|l| l.strip_prefix("  ci-2027: "))
        .unwrap_or_else(|| panic!("no entry line in {help}"));
    assert!(!help.contains(&key), "the key is printed once, on stdout");
    let (keys, errors) = tributary::worker::orders::security::api_keys::Keys::parse([("ci-2027", entry)]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(keys.principal(&key), Some("ci"));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["apikey", "new", "--name", "a/b"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--name"));
}
