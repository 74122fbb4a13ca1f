//! The processes of the worker bench: a `tributary worker` drained queue by queue, the no-op container
//! (this bench binary started again, serving only), and what the kernel says about them (CPU time, peak
//! memory, the machine's load).

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

/// A `tributary worker` process.
pub struct Worker {
    child: Child,
    metrics_port: u16,
}

/// A free port on 127.0.0.1 (bound, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Worker {
    /// A worker draining `url` with `processor` (the YAML of `processor:` and what it reads), long
    /// polling `wait_seconds`.
    pub fn start(
        url: &str,
        (receivers, wait_seconds): (usize, u32),
        processor: &str,
        env: &HashMap<String, String>,
        endpoint: &str,
    ) -> Self {
        let metrics_port = free_port();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join(format!("worker-{metrics_port}.yaml"));
        std::fs::write(
            &config,
            format!(
                "consumer: {{namespace: bench, name: noop}}\nprocessor: {processor}\nsource:\n  sqs: {{queueUrl: '{url}', receivers: {receivers}, waitTimeSeconds: {wait_seconds}}}\nmetricsListen: '127.0.0.1:{metrics_port}'\n"
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(["worker", "--config"])
            .arg(&config)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", &env["AWS_REGION"])
            .env("AWS_ACCESS_KEY_ID", &env["AWS_ACCESS_KEY_ID"])
            .env("AWS_SECRET_ACCESS_KEY", &env["AWS_SECRET_ACCESS_KEY"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start tributary worker");
        Self { child, metrics_port }
    }

    /// The worker's `/metrics` text, if it answers.
    pub fn metrics(&self) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// The value of the first sample of metric `name` (with its labels, whatever they are).
    pub fn metric(&self, name: &str) -> Option<u64> {
        sample(&self.metrics()?, name)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the worker to exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The value of the first sample of `name` in a Prometheus text.
pub fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// CPU time (user + system) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    static TICKS: OnceLock<f64> = OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Duration::from_secs_f64((field(14) + field(15)) / ticks)
}

/// Peak resident memory (VmHWM) of `pid` in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The 1-minute load average.
pub fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Set in the environment of this binary started again as the no-op container: the address it serves.
pub const CONTAINER_LISTEN: &str = "BENCH_NOOP_CONTAINER_LISTEN";
/// The no-op container's threads: 1 (the default) is a current-thread runtime.
pub const CONTAINER_THREADS: &str = "BENCH_CONTAINER_THREADS";

/// The no-op container, a process of its own as in the pod: answers every request (the deliveries and
/// the readiness path) with 200 and no body, on hyper through axum, keep-alive, TCP_NODELAY, on a
/// current-thread runtime (one core at most, like a small container; its CPU time is reported so it is
/// seen not to be the bottleneck).
pub struct NoopContainer {
    child: Child,
    pub url: String,
}

impl NoopContainer {
    pub async fn start() -> Self {
        let port = free_port();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CONTAINER_LISTEN, format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start the no-op container");
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the no-op container exited before it answered: {status}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Serves at `address` until killed (the no-op container's own `main`).
    pub fn serve(address: &str) {
        use axum::serve::ListenerExt as _;
        let threads = std::env::var(CONTAINER_THREADS)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let runtime = match threads {
            1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
            n => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build(),
        }
        .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .unwrap()
                .tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
            let app = axum::Router::new().fallback(|| async { axum::http::StatusCode::OK });
            axum::serve(listener, app).await.unwrap();
        });
    }
}

impl Drop for NoopContainer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
