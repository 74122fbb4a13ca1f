//! Who gets in and what they may read: authentication, authorization, revocation and rotation.

use std::time::{Duration, Instant};

use serde_json::json;
use tributary::worker::orders::{model::OrderEvent, security::api_keys::new_key, store::OrderStore as _};

use super::{
    Suite, common,
    harness::{expect, order},
};

/// Every request without valid credentials is 401 with `WWW-Authenticate` and a request id.
pub(crate) async fn authentication(suite: &Suite) {
    let tally = &suite.tally;
    let (_, headers, body) = expect(tally, "POST without credentials", suite.post(&order("a")), 401).await;
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(body["error"], "unauthorized");
    let id = body["requestId"].as_str().unwrap();
    assert_eq!(headers["x-request-id"], id, "the request id is answered twice");
    expect(tally, "GET without credentials", suite.get("o-none"), 401).await;
    let wrong = new_key(None).unwrap().key;
    let attempts = [
        (
            "a wrong key (Bearer)",
            suite.post(&order("a")).bearer_auth(&wrong),
        ),
        (
            "a wrong key (X-API-Key)",
            suite.post(&order("a")).header("x-api-key", &wrong),
        ),
        (
            "Basic credentials",
            suite.post(&order("a")).basic_auth("alice", Some(&suite.alice)),
        ),
    ];
    for (what, request) in attempts {
        expect(tally, what, request, 401).await;
    }
    for (what, token) in suite.issuer.forged() {
        expect(tally, what, suite.post(&order("a")).bearer_auth(&token), 401).await;
    }
}

/// A principal reads its own orders only (another's is exactly a missing one's 404), idempotency keys
/// are per principal, an order without a principal is nobody's, and bad input is 400 naming the field.
/// Returns alice's order id and that of the JWT principal dave.
pub(crate) async fn authorization(suite: &Suite, bob: &str) -> (String, String) {
    let (tally, alice) = (&suite.tally, suite.alice.as_str());
    let (_, _, placed) = expect(
        tally,
        "alice places an order",
        suite.post(&order("k1")).bearer_auth(alice),
        202,
    )
    .await;
    let alice_order = placed["orderId"].as_str().unwrap().to_owned();
    expect(
        tally,
        "alice reads her order",
        suite.get(&alice_order).header("x-api-key", alice),
        200,
    )
    .await;
    let (_, _, hidden) = expect(
        tally,
        "bob reads alice's order",
        suite.get(&alice_order).bearer_auth(bob),
        404,
    )
    .await;
    let (_, _, missing) = expect(
        tally,
        "bob reads a missing order",
        suite.get("o-missing").bearer_auth(bob),
        404,
    )
    .await;
    assert_eq!(
        hidden["error"], missing["error"],
        "another's order looks like a missing one"
    );
    assert_eq!(
        hidden.as_object().unwrap().len(),
        missing.as_object().unwrap().len()
    );
    let (_, _, bobs) = expect(
        tally,
        "bob reuses alice's idempotency key",
        suite.post(&order("k1")).bearer_auth(bob),
        202,
    )
    .await;
    assert_ne!(
        bobs["orderId"], placed["orderId"],
        "idempotency keys are scoped per principal"
    );

    let jwt = suite.issuer.token("dave");
    let (_, _, daves) = expect(
        tally,
        "a valid JWT places an order",
        suite.post(&order("k1")).bearer_auth(&jwt),
        202,
    )
    .await;
    let dave_order = daves["orderId"].as_str().unwrap().to_owned();
    expect(
        tally,
        "the JWT principal reads its order",
        suite.get(&dave_order).bearer_auth(&jwt),
        200,
    )
    .await;
    expect(
        tally,
        "alice reads the JWT principal's order",
        suite.get(&dave_order).bearer_auth(alice),
        404,
    )
    .await;

    // An order recorded before principals were: nobody reads it.
    let legacy = OrderEvent::placed("o-legacy", &serde_json::from_value(order("legacy")).unwrap());
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    suite
        .table
        .create_order(&legacy, traceparent, None)
        .await
        .unwrap();
    expect(
        tally,
        "an order without a principal",
        suite.get("o-legacy").bearer_auth(alice),
        404,
    )
    .await;

    let mut bad = order("bad");
    bad["items"][0]["quantity"] = json!(0);
    let (_, _, refused) = expect(
        tally,
        "an invalid order",
        suite.post(&bad).bearer_auth(alice),
        400,
    )
    .await;
    let message = refused["message"].as_str().unwrap();
    assert!(message.starts_with("items[0].quantity"), "{refused}");
    (alice_order, dave_order)
}

/// The issuer rotates its key: a token with the new `kid` is accepted once the worker fetches the JWKS
/// again for the unknown kid (at most every 10 s), without a restart; the principal is the same.
pub(crate) async fn jwks_rotation(suite: &Suite, dave_order: &str) {
    let token = suite.issuer.rotate("issuer-key-2", "dave");
    common::eventually(
        "a token of the rotated key to be accepted",
        Duration::from_secs(20),
        || {
            let request = suite.get(dave_order).bearer_auth(&token);
            async move { (request.send().await.ok()?.status() == 200).then_some(()) }
        },
    )
    .await;
    let tally = &suite.tally;
    expect(
        tally,
        "a token of the rotated issuer key",
        suite.get(dave_order).bearer_auth(&token),
        200,
    )
    .await;
}

/// A key works, its file is deleted (as the kubelet does when the Secret entry goes), and within
/// seconds it is refused without a restart; a rotated key of the same principal reads the principal's
/// orders. Returns how long the revocation took and the rotated key.
pub(crate) async fn revocation(suite: &Suite, alice_order: &str) -> (Duration, String) {
    let tally = &suite.tally;
    let carol = suite.endpoint.add_key("carol", "carol");
    suite.endpoint.wait_accepts(&suite.http, &carol).await;
    expect(
        tally,
        "carol's key before revocation",
        suite.get("o-none").bearer_auth(&carol),
        404,
    )
    .await;
    std::fs::remove_file(suite.endpoint.key_dir.join("carol")).unwrap();
    let revoked_at = Instant::now();
    common::eventually("the revoked key to be refused", Duration::from_secs(10), || {
        let request = suite.get("o-none").bearer_auth(&carol);
        async move { (request.send().await.ok()?.status() == 401).then_some(()) }
    })
    .await;
    let revocation = revoked_at.elapsed();
    expect(
        tally,
        "a revoked key",
        suite.post(&order("r")).bearer_auth(&carol),
        401,
    )
    .await;
    let rotated = suite.endpoint.add_key("alice-2027", "alice");
    common::eventually(
        "the rotated key to read alice's order",
        Duration::from_secs(10),
        || {
            let request = suite.get(alice_order).bearer_auth(&rotated);
            async move { (request.send().await.ok()?.status() == 200).then_some(()) }
        },
    )
    .await;
    (revocation, rotated)
}
