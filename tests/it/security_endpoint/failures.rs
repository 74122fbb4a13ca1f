//! Cloud failures answered without cloud details, and HTTPS from a TLS Secret's files.

use std::{path::PathBuf, time::Duration};

use serde_json::json;

use super::{
    Suite, common,
    harness::{Endpoint, expect, order},
};

/// The moto account id, which must never reach a client.
pub(crate) const MOTO_ACCOUNT: &str = "123456789012";

/// A worker whose table and topic do not exist answers 500/503 without naming them. Returns the
/// missing table's name (for the leak scan).
pub(crate) async fn cloud_failure(suite: &Suite) -> String {
    let missing_table = common::unique("no-such-table");
    let missing_topic = format!(
        "arn:aws:sns:us-east-1:{MOTO_ACCOUNT}:{}",
        common::unique("no-such-topic")
    );
    let broken = Endpoint::start(
        &suite.work,
        "broken",
        (&missing_table, &missing_topic),
        &suite.issuer.url,
        None,
    );
    let key = broken.add_key("alice", "alice");
    broken.wait_answers(&suite.http, &key).await;
    let requests = [
        (
            "a cloud failure on POST",
            suite
                .http
                .post(format!("{}/orders", broken.base))
                .json(&order("x")),
        ),
        (
            "a cloud failure on GET",
            suite.http.get(format!("{}/orders/o-1", broken.base)),
        ),
    ];
    for (what, request) in requests {
        let response = request.bearer_auth(&key).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        suite.tally.record(
            what,
            matches!(status, 500 | 503),
            &format!("{status} {text}"),
            Some(text),
        );
    }
    missing_table
}

/// HTTPS with the test bed's certificate for 127.0.0.1 (as a mounted `kubernetes.io/tls` Secret gives
/// it), with the same authentication; plain HTTP on that port is not served.
pub(crate) async fn tls(suite: &Suite, alice_order: &str) {
    let ca = PathBuf::from(common::var("TESTBED_CA_FILE"));
    let pki = ca.parent().unwrap();
    let files = json!({"certFile": pki.join("cosmos.crt"), "keyFile": pki.join("cosmos.key")});
    let sink = (suite.table_name.as_str(), suite.topic_arn.as_str());
    let secure = Endpoint::start(&suite.work, "tls", sink, &suite.issuer.url, Some(files));
    let key = secure.add_key("alice", "alice");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}", secure.port);
    // The endpoint answers over HTTPS once it is up; a key of the same name and principal as alice's, but
    // of another Consumer sharing the table, does not read alice's order (exactly a missing one's 404).
    common::eventually("the HTTPS endpoint", Duration::from_secs(30), || {
        let request = https
            .get(format!("{base}/orders/{alice_order}"))
            .bearer_auth(&key);
        async move { (request.send().await.ok()?.status() == 404).then_some(()) }
    })
    .await;
    expect(
        &suite.tally,
        "another Consumer's key of the same principal reads alice's order",
        https
            .get(format!("{base}/orders/{alice_order}"))
            .bearer_auth(&key),
        404,
    )
    .await;
    let (_, _, placed) = expect(
        &suite.tally,
        "an order placed over HTTPS",
        https
            .post(format!("{base}/orders"))
            .bearer_auth(&key)
            .json(&order("tls-1")),
        202,
    )
    .await;
    let own = placed["orderId"].as_str().unwrap_or_default().to_owned();
    expect(
        &suite.tally,
        "the HTTPS principal reads its own order",
        https.get(format!("{base}/orders/{own}")).bearer_auth(&key),
        200,
    )
    .await;
    expect(
        &suite.tally,
        "HTTPS without credentials",
        https.get(format!("{base}/orders/o-none")),
        401,
    )
    .await;
    let plain = suite
        .http
        .get(format!("http://127.0.0.1:{}/orders/o-none", secure.port))
        .bearer_auth(&key)
        .send()
        .await;
    let served = plain
        .as_ref()
        .is_ok_and(|r| r.status().is_success() || r.status() == 404);
    suite
        .tally
        .record("plain HTTP on the TLS port", !served, &format!("{plain:?}"), None);
}
