//! The controller's start-up check on the test bed: installed CRDs pass, a kind the API server does not
//! serve is one clear error naming it and saying how to install the CRDs.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tributary::controller::{ensure_crds, ensure_served};

/// A kind no CRD defines.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[kube(group = "missing.tributary.dev", version = "v1", kind = "Absent", namespaced)]
struct AbsentSpec {
    field: String,
}

#[tokio::test]
async fn installed_crds_pass_and_a_missing_one_is_named() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    ensure_crds(&client, None).await.unwrap();
    ensure_crds(&client, Some("default")).await.unwrap();
    let error = ensure_served::<Absent>(&client, None).await.unwrap_err();
    assert!(
        error.starts_with("the API server does not serve absents (missing.tributary.dev/v1)")
            && error.contains("crds/tributary.yaml"),
        "{error}"
    );
}
