//! The test bed's ARM fake as a process, for `make demo`: `cargo run --example arm-fake -- 127.0.0.1:PORT`
//! with the test bed's environment (`KAFKA_BOOTSTRAP`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`,
//! `KAFKA_CA_FILE`). Runs until SIGTERM or Ctrl-C. See `fake.rs` for what it fakes.
#![allow(clippy::unwrap_used, missing_docs)]

mod fake;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (source the test bed's env)"))
}

#[tokio::main]
async fn main() {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let broker = fake::Broker {
        bootstrap: var("KAFKA_BOOTSTRAP"),
        username: var("KAFKA_SASL_USERNAME"),
        password: var("KAFKA_SASL_PASSWORD"),
        ca_file: var("KAFKA_CA_FILE"),
    };
    let fake = fake::ArmFake::start(&listen, broker).await;
    println!("ARM fake on {}", fake.base);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
