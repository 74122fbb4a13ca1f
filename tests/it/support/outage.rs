//! Outages of the test bed's emulators: stop one service by its pid file and start it again
//! (testbed/service.sh, which keeps its state across the restart), and count the connection attempts its
//! clients make while it is down.
//!
//! The count comes from a listener the test puts on the stopped service's port: it accepts each
//! connection and closes it at once, unanswered. Its clients then see a connection closed before an
//! answer rather than a refused one (both are "no answer from the service" to Tributary), and every
//! request (each retry of the SDKs included) is one connection, since a closed connection is never
//! reused. The callers measure the refused phase first and put the listener up afterwards.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// A test bed service that can be stopped and started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// moto: SNS, SQS, DynamoDB.
    Moto,
    /// Azurite: Storage Queues.
    Azurite,
    /// cosmium: Cosmos DB.
    Cosmium,
    /// The Kafka broker (the Event Hubs Kafka endpoint).
    Kafka,
}

impl Service {
    /// Its name in testbed/service.sh and the pid files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Moto => "moto",
            Self::Azurite => "azurite",
            Self::Cosmium => "cosmium",
            Self::Kafka => "kafka",
        }
    }

    /// The port its clients connect to (for Kafka, the SASL_SSL listener Tributary uses).
    pub fn port(self) -> u16 {
        let address = match self {
            Self::Moto => super::var("AWS_ENDPOINT_URL"),
            Self::Azurite => super::var("AZURE_STORAGE_QUEUE_ENDPOINT"),
            Self::Cosmium => super::var("COSMOS_ENDPOINT"),
            Self::Kafka => super::var("KAFKA_BOOTSTRAP"),
        };
        let after_host = address.rsplit("127.0.0.1:").next().unwrap();
        let digits: String = after_host.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    }

    /// Stops it (SIGTERM by its pid, waiting until it has exited and saved its state). The guard starts
    /// it again when dropped, so a failing test does not leave the test bed without it.
    pub async fn stop(self) -> Down {
        let output = tokio::task::spawn_blocking(move || service_sh("stop", self))
            .await
            .unwrap();
        check(&output, "stop", self);
        Down {
            service: self,
            started: false,
        }
    }
}

/// A stopped service.
pub struct Down {
    service: Service,
    started: bool,
}

impl Down {
    /// Starts it again and waits until it answers.
    pub async fn start(mut self) {
        let service = self.service;
        let output = tokio::task::spawn_blocking(move || service_sh("start", service))
            .await
            .unwrap();
        self.started = true;
        check(&output, "start", service);
    }
}

impl Drop for Down {
    fn drop(&mut self) {
        if !self.started {
            let _ = service_sh("start", self.service);
        }
    }
}

fn service_sh(action: &str, service: Service) -> std::process::Output {
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testbed/service.sh");
    std::process::Command::new("bash")
        .arg(script)
        .args([action, service.name()])
        .env("TESTBED_DIR", super::var("TESTBED_DIR"))
        .output()
        .unwrap()
}

fn check(output: &std::process::Output, action: &str, service: Service) {
    assert!(
        output.status.success(),
        "testbed/service.sh {action} {}: {}",
        service.name(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A listener on a stopped service's port that counts connection attempts, per client process and
/// per request (an HTTP request's `X-Amz-Target`, `Action` parameter or path; `TLS` for an encrypted
/// connection, whose request is not readable).
pub struct Knocks {
    counts: Arc<Mutex<BTreeMap<(String, String), u64>>>,
    started: Instant,
    task: tokio::task::JoinHandle<()>,
}

/// What a listener saw: connection attempts per (client, request), over `seconds`.
#[derive(Debug)]
pub struct Seen {
    /// Connection attempts per (client process, request).
    pub counts: BTreeMap<(String, String), u64>,
    /// How long it listened.
    pub seconds: f64,
}

impl Seen {
    /// All attempts.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Attempts per second.
    pub fn rate(&self) -> f64 {
        self.total() as f64 / self.seconds
    }

    /// Attempts per second of one client.
    pub fn rate_of(&self, client: &str) -> f64 {
        let of: u64 = self
            .counts
            .iter()
            .filter(|((c, _), _)| c == client)
            .map(|(_, n)| n)
            .sum();
        of as f64 / self.seconds
    }

    /// One line per client: its rate and its requests, most frequent first.
    pub fn breakdown(&self) -> String {
        let clients: std::collections::BTreeSet<&String> = self.counts.keys().map(|(c, _)| c).collect();
        let mut lines = Vec::new();
        for client in clients {
            let mut what: Vec<(&String, &u64)> = self
                .counts
                .iter()
                .filter(|((c, _), _)| c == client)
                .map(|((_, w), n)| (w, n))
                .collect();
            what.sort_by(|a, b| b.1.cmp(a.1));
            let what: Vec<String> = what.iter().map(|(w, n)| format!("{w} {n}")).collect();
            lines.push(format!(
                "{client} {:.1}/s: {}",
                self.rate_of(client),
                what.join(", ")
            ));
        }
        lines.join("; ")
    }
}

impl Knocks {
    /// Listens on 127.0.0.1:`port` (with SO_REUSEADDR, so the service can bind it again afterwards);
    /// `clients` names the processes (name, pid) whose attempts are told apart, the rest are "other".
    pub fn listen(port: u16, clients: &[(&str, u32)]) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], port).into()).unwrap();
        let listener = socket.listen(1024).unwrap();
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let clients: Vec<(String, u32)> = clients.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect();
        let task = tokio::spawn({
            let counts = counts.clone();
            async move {
                while let Ok((connection, peer)) = listener.accept().await {
                    let client = owner(peer.port(), port, &clients);
                    let counts = counts.clone();
                    tokio::spawn(async move {
                        let what = request_of(connection).await;
                        *counts.lock().unwrap().entry((client, what)).or_insert(0) += 1;
                    });
                }
            }
        });
        Self {
            counts,
            started: Instant::now(),
            task,
        }
    }

    /// Stops listening (the port is free again) and returns what it saw.
    pub async fn close(self) -> Seen {
        self.task.abort();
        let _ = self.task.await;
        let seconds = self.started.elapsed().as_secs_f64();
        let counts = self.counts.lock().unwrap().clone();
        Seen { counts, seconds }
    }
}

/// Reads the start of a connection's request (briefly) and names it; the connection is then closed
/// unanswered.
async fn request_of(mut connection: tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut head = vec![0u8; 8192];
    let read = tokio::time::timeout(Duration::from_millis(300), connection.read(&mut head)).await;
    let n = match read {
        Ok(Ok(n)) => n,
        _ => 0,
    };
    let head = &head[..n];
    if head.first() == Some(&0x16) {
        return "TLS".to_owned();
    }
    let text = String::from_utf8_lossy(head);
    let header = |name: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    };
    if let Some(target) = header("x-amz-target") {
        return target.rsplit('.').next().unwrap_or(&target).to_owned();
    }
    if let Some(action) = text
        .split(['&', '?', '\n'])
        .find_map(|p| p.strip_prefix("Action="))
    {
        return action.split_whitespace().next().unwrap_or(action).to_owned();
    }
    let first = text.lines().next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("?");
    let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
    format!("{method} {path}")
}

/// Which of `clients` holds the socket connected from 127.0.0.1:`peer_port` to `port`: its local
/// socket's inode from /proc/net/tcp, looked for among each client's file descriptors.
fn owner(peer_port: u16, port: u16, clients: &[(String, u32)]) -> String {
    let inode = std::fs::read_to_string("/proc/net/tcp").ok().and_then(|table| {
        table.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
            let remote = u16::from_str_radix(fields.get(2)?.rsplit(':').next()?, 16).ok()?;
            (local == peer_port && remote == port).then(|| fields.get(9).map(|s| (*s).to_owned()))?
        })
    });
    let Some(inode) = inode else {
        return "other".to_owned();
    };
    let socket = format!("socket:[{inode}]");
    for (name, pid) in clients {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == socket));
        if holds {
            return name.clone();
        }
    }
    "other".to_owned()
}

/// Counts connection attempts on `service`'s port for `window` (the service must be stopped), telling
/// `clients` apart.
pub async fn knocks_during(service: Service, window: Duration, clients: &[(&str, u32)]) -> Seen {
    let knocks = Knocks::listen(service.port(), clients);
    tokio::time::sleep(window).await;
    knocks.close().await
}
