//! Leader fencing with two real controller processes against the test bed: the leader is frozen
//! (SIGSTOP), the standby takes over once it has seen the Lease unchanged for the lease duration and
//! reconciles a new object; the frozen one, woken (SIGCONT), sends no cloud request after it was frozen,
//! hence none after it lost the lease, and exits non-zero.
//!
//! Each controller reaches moto through its own counting proxy, so every AWS request is attributed to
//! the process that sent it. The controllers resync every 2 s, so the frozen one has reconciles due the
//! moment it wakes: only the fence stops them. The timing is 4 s / 3 s / 1 s (lease duration, renew
//! deadline, retry period); `FENCING_LEASE_TIMING=15,10,2` measures client-go's defaults instead.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

/// An HTTP proxy to moto that counts the requests it forwards.
struct CountingProxy {
    port: u16,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        let http = reqwest::Client::new();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            counted.fetch_add(1, Ordering::SeqCst);
            forward(request, http.clone(), upstream.clone())
        });
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { port, requests, task }
    }

    fn count(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn forward(
    request: axum::extract::Request,
    http: reqwest::Client,
    upstream: String,
) -> axum::response::Response {
    use axum::http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut sent = http.request(parts.method, format!("{upstream}{path}")).body(body);
    for (name, value) in &parts.headers {
        if name != HOST && name != CONTENT_LENGTH {
            sent = sent.header(name, value);
        }
    }
    let answer = sent.send().await.unwrap();
    let mut response = axum::response::Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != TRANSFER_ENCODING && name != CONTENT_LENGTH {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap();
    response.body(axum::body::Body::from(bytes)).unwrap()
}

/// A child process killed (SIGKILL, which also ends a stopped one) when the test ends, passed or not.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lease timing `(duration, renew deadline, retry period)` in seconds.
fn timing() -> (u64, u64, u64) {
    let text = std::env::var("FENCING_LEASE_TIMING").unwrap_or_else(|_| "4,3,1".to_owned());
    let parts: Vec<u64> = text.split(',').map(|p| p.trim().parse().unwrap()).collect();
    (parts[0], parts[1], parts[2])
}

/// A `tributary controller` process named `identity`, watching `ns` and leading through the Lease `lease`.
fn spawn_controller(identity: &str, ns: &str, lease: &str, proxy: u16, metrics: u16, log: &Path) -> Process {
    let (duration, deadline, retry) = timing();
    let output = std::fs::File::create(log).unwrap();
    Command::new(common::tributary_bin())
        .arg("controller")
        .env_clear()
        .env("KUBECONFIG", common::var("KUBECONFIG"))
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{proxy}"))
        .env("AWS_REGION", common::var("AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", common::var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", common::var("AWS_SECRET_ACCESS_KEY"))
        .env("POD_NAME", identity)
        .env("POD_NAMESPACE", ns)
        .env("TRIBUTARY_LEASE_NAME", lease)
        .env("TRIBUTARY_WATCH_NAMESPACE", ns)
        .env("TRIBUTARY_METRICS_LISTEN", format!("127.0.0.1:{metrics}"))
        .env("TRIBUTARY_RESYNC_SECONDS", "2")
        .env("TRIBUTARY_QUIET_START_SECONDS", "0")
        .env("TRIBUTARY_AWS_RATE_LIMITS", "*=unlimited")
        .env("TRIBUTARY_CLUSTER_ID", common::TEST_CLUSTER)
        .env("TRIBUTARY_LEASE_DURATION_SECONDS", duration.to_string())
        .env("TRIBUTARY_LEASE_RENEW_DEADLINE_SECONDS", deadline.to_string())
        .env("TRIBUTARY_LEASE_RETRY_PERIOD_SECONDS", retry.to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(output)
        .spawn()
        .map(Process)
        .unwrap()
}

/// The `tributary_leader` gauge of the controller serving metrics on `port`.
async fn leading(port: u16) -> Option<bool> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let line = text.lines().find(|l| l.starts_with("tributary_leader "))?;
    Some(line.ends_with(" 1"))
}

fn signal(process: &Process, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal}");
}

fn queue(name: &str) -> String {
    format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Queue\nmetadata: {{name: {name}}}\nspec: {{provider: aws, aws: {{}}}}\n"
    )
}

#[tokio::test]
async fn a_frozen_leader_is_replaced_and_makes_no_cloud_call_after_losing_the_lease() {
    // Alone: the hand-over is timed, and a loaded API server would stretch it.
    let _bed = common::exclusive().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "fencing").await;
    let lease = common::unique("lease");
    let logs = std::env::temp_dir().join(common::unique("fencing"));
    std::fs::create_dir_all(&logs).unwrap();
    let (log_a, log_b) = (logs.join("a.log"), logs.join("b.log"));
    let (proxy_a, proxy_b) = (
        CountingProxy::start(common::var("AWS_ENDPOINT_URL")).await,
        CountingProxy::start(common::var("AWS_ENDPOINT_URL")).await,
    );
    let (metrics_a, metrics_b) = (common::free_port(), common::free_port());

    // A leads and reconciles a Queue; B stands by.
    let mut a = spawn_controller("leader-a", &ns, &lease, proxy_a.port, metrics_a, &log_a);
    common::eventually("A to lead", Duration::from_secs(30), || async {
        leading(metrics_a).await.filter(|l| *l)
    })
    .await;
    let mut b = spawn_controller("leader-b", &ns, &lease, proxy_b.port, metrics_b, &log_b);
    common::eventually("B to stand by", Duration::from_secs(30), || async {
        leading(metrics_b).await.filter(|l| !*l)
    })
    .await;
    common::create_yaml(&client, &ns, &queue("first")).await;
    common::wait_reason(
        &client,
        &ns,
        "Queue",
        "first",
        "Available",
        Duration::from_secs(60),
    )
    .await;
    assert!(proxy_a.count() > 0, "the leader reconciled through its proxy");
    assert_eq!(proxy_b.count(), 0, "the standby made no cloud call");

    // Freeze A. From here on it must send nothing.
    signal(&a, "-STOP");
    let frozen = Instant::now();
    let sent_before_freeze = proxy_a.count();
    common::create_yaml(&client, &ns, &queue("second")).await;
    common::eventually("B to lead", Duration::from_secs(60), || async {
        leading(metrics_b).await.filter(|l| *l)
    })
    .await;
    let leads_after = frozen.elapsed();
    common::wait_reason(
        &client,
        &ns,
        "Queue",
        "second",
        "Available",
        Duration::from_secs(60),
    )
    .await;
    let reconciles_after = frozen.elapsed();

    // Wake A: its reconciles are due, its renewal deadline long past. It must exit, having sent nothing.
    signal(&a, "-CONT");
    let woken = Instant::now();
    let status = common::eventually("A to exit", Duration::from_secs(20), || {
        let exited = a.0.try_wait().unwrap();
        async move { exited }
    })
    .await;
    let exited_after = woken.elapsed();
    let sent_after_freeze = proxy_a.count() - sent_before_freeze;
    let log = std::fs::read_to_string(&log_a).unwrap();
    let refused = log
        .matches("not sent: this replica does not hold the leader lease")
        .count();
    eprintln!(
        "fencing (lease {:?}): B leads {leads_after:?} and reconciles a new Queue {reconciles_after:?} after \
         A froze; A sent {sent_before_freeze} AWS requests before it froze and {sent_after_freeze} after; \
         A exited {exited_after:?} after waking with {status}, {refused} calls or writes refused by its fence",
        timing()
    );
    assert_eq!(
        sent_after_freeze, 0,
        "the frozen leader called AWS after it lost the lease:\n{log}"
    );
    assert!(!status.success(), "A exited with {status}");
    assert!(log.contains("lost the leader lease"), "{log}");
    // A's last renewal started at most a retry period (and a request) before the freeze, and B counts
    // the lease duration from when it saw that renewal: never sooner than that after the freeze.
    let (duration, _, retry) = timing();
    assert!(
        leads_after >= Duration::from_secs(duration - retry),
        "B took over {leads_after:?} after the freeze, before the {duration} s lease could have expired"
    );
    assert!(proxy_b.count() > 0, "the new leader reconciled through its proxy");

    signal(&b, "-TERM");
    let stopped = common::eventually("B to stop", Duration::from_secs(20), || {
        let exited = b.0.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert!(stopped.success(), "B exited with {stopped} after SIGTERM");
    proxy_a.task.abort();
    proxy_b.task.abort();
}
