//! Reading the objects a reviewed object references, from the API server, in the object's namespace only.

use std::sync::Arc;

use kube::{
    Api, Client, Resource,
    core::{DynamicObject, admission::AdmissionRequest},
};
use serde::de::DeserializeOwned;

use super::review::OwnedSpec;
use crate::admission::{self, Reference, Referenced};

/// The referenced objects of the request's object that exist, and a warning for each that could not be
/// read. A read failure is no refusal: the controller checks the same rules again when it reconciles.
pub async fn referenced(
    client: &Client,
    request: &AdmissionRequest<DynamicObject>,
) -> (Referenced, Vec<String>) {
    let mut referenced = Referenced::default();
    let mut warnings = Vec::new();
    let (Some(object), Some(namespace)) = (&request.object, &request.namespace) else {
        return (referenced, warnings);
    };
    let Ok(spec) = OwnedSpec::parse(&request.kind.kind, object) else {
        return (referenced, warnings);
    };
    for reference in admission::references(spec.as_spec()) {
        let result = match &reference {
            Reference::Topic(name) => read(client, namespace, name, &mut referenced.topics).await,
            Reference::Queue(name) => read(client, namespace, name, &mut referenced.queues).await,
            Reference::DeadLetter(name) => read(client, namespace, name, &mut referenced.dead_letters).await,
            Reference::DeviceStream(name) => {
                read(client, namespace, name, &mut referenced.device_streams).await
            }
        };
        if let Err(e) = result {
            warnings.push(format!(
                "could not read the referenced {reference:?} ({e}); the controller checks the references again"
            ));
        }
    }
    (referenced, warnings)
}

/// Reads `name` into `into` when it exists.
async fn read<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    into: &mut std::collections::BTreeMap<String, Arc<K>>,
) -> Result<(), kube::Error>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    if let Some(object) = api.get_opt(name).await? {
        into.insert(name.to_owned(), Arc::new(object));
    }
    Ok(())
}
