//! The objects of a tree, listed with the user's Kubernetes client (list only; no watch, no write).

use kube::{Api, Client, api::ListParams};

use crate::api::{Consumer, DeadLetter, DeviceStream, Queue, Subscription, Topic};

use super::build::Objects;
use super::{Error, Scope};

/// Every Tributary object `scope` may need: one namespace's, or every namespace's.
pub async fn objects(client: &Client, scope: &Scope) -> Result<Objects, Error> {
    let namespace = match scope {
        Scope::AllNamespaces => None,
        Scope::Namespace(namespace) | Scope::Object { namespace, .. } => Some(namespace.as_str()),
    };
    Ok(Objects {
        topics: list::<Topic>(client, namespace, "Topics").await?,
        subscriptions: list::<Subscription>(client, namespace, "Subscriptions").await?,
        queues: list::<Queue>(client, namespace, "Queues").await?,
        consumers: list::<Consumer>(client, namespace, "Consumers").await?,
        dead_letters: list::<DeadLetter>(client, namespace, "DeadLetters").await?,
        device_streams: list::<DeviceStream>(client, namespace, "DeviceStreams").await?,
    })
}

async fn list<K>(client: &Client, namespace: Option<&str>, kind: &'static str) -> Result<Vec<K>, Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::List { kind, source })?;
    Ok(list.items)
}
