//! The Tributary API: six namespaced kinds and the cluster-scoped `TenantPolicy` in `tributary.dev/v1alpha1`, with the CRDs generated from these
//! types (`tributary crds`). Cross-field rules are CEL (`x-kubernetes-validations`), so the API server
//! rejects a bad object with a message naming the field.

pub mod common;
pub mod consumer;
pub mod dead_letter;
pub mod device_stream;
pub mod http_source;
pub mod queue;
pub mod subscription;
pub mod tenant_policy;
pub mod topic;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use consumer::Consumer;
pub use dead_letter::DeadLetter;
pub use device_stream::DeviceStream;
pub use queue::Queue;
pub use subscription::Subscription;
pub use tenant_policy::TenantPolicy;
pub use topic::Topic;

/// Every CRD of the API, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Topic::crd(),
        Queue::crd(),
        Subscription::crd(),
        Consumer::crd(),
        DeviceStream::crd(),
        DeadLetter::crd(),
        TenantPolicy::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream, as committed under `crds/`.
pub fn crds_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `crds/tributary.yaml` is what users install; it must be exactly what the types generate.
    #[test]
    fn committed_crds_match_the_types() {
        let committed = include_str!("../../crds/tributary.yaml");
        let generated = crds_yaml().expect("CRDs serialise");
        assert!(
            committed == generated,
            "crds/tributary.yaml is out of date: run `make crds` (cargo run -- crds > crds/tributary.yaml) and commit it"
        );
    }

    /// The Helm chart installs the same CRDs from its `crds/` folder.
    #[test]
    fn the_charts_crds_are_the_committed_ones() {
        let chart = include_str!("../../charts/tributary/crds/tributary.yaml");
        assert!(
            chart == include_str!("../../crds/tributary.yaml"),
            "charts/tributary/crds/tributary.yaml differs from crds/tributary.yaml: run `make crds` and commit both"
        );
    }

    #[test]
    fn every_kind_is_namespaced_in_the_tributary_category_with_status() {
        for crd in crds().into_iter().filter(|c| c.spec.names.kind != "TenantPolicy") {
            assert_eq!(crd.spec.group, common::GROUP);
            assert_eq!(crd.spec.scope, "Namespaced");
            assert_eq!(
                crd.spec.names.categories.as_deref(),
                Some(&["tributary".to_owned()][..])
            );
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, common::VERSION);
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
                "{}",
                crd.spec.names.kind
            );
        }
    }

    /// The policy is cluster-scoped (tenants' namespaced roles never reach it) and outside the
    /// `tributary` category (`kubectl get tributary -n ns` lists a namespace's pipeline only).
    #[test]
    fn the_tenant_policy_is_cluster_scoped_and_not_in_the_category() {
        let crd = TenantPolicy::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.categories, None);
    }
}
