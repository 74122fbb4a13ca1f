//! Queue and DeadLetter on `azure`: an Azure Storage Queue. validate: the `azure` block and its account key
//! reference → dependencies: the key, from the referenced Secret → build: the queue name and the ownership
//! marks → apply: find or create, adopt or refuse, mark → status: URL, depth, oldest message age.
//!
//! A storage queue has no tags, so the ownership marks live in its metadata (names must be identifiers:
//! `tributary_cluster`, `tributary_kind`, `tributary_namespace`, `tributary_name`). A queue marked before
//! cluster identities (no `tributary_cluster`) is ours when the other three match, and gets the mark. It has no queue-wide visibility timeout or
//! time to live (both are set per message, by the workers), and no dead-lettering or redrive of its own:
//! the workers dead-letter (`cloud::azure::queue`).

use std::collections::HashMap;

use kube::ResourceExt;

use crate::{
    api::common::{DeletionPolicy, QueueObservation, StorageQueueLocation},
    cloud::{
        StorageQueueAdmin, Tags,
        azure::storage_queues::{Account, Observed},
    },
    controller::{
        Cloud, Context,
        driver::{
            error::Error,
            events::{self, reasons},
            ownership::{
                Owner, Ownership, TAG_CLUSTER, TAG_KIND, TAG_NAME, TAG_NAMESPACE, lost, ownership, refusal,
            },
            secrets,
            status::{Kind, describe},
        },
    },
};

/// Metadata names of the ownership marks, and the ownership tags they stand for.
const MARKS: [(&str, &str); 4] = [
    ("tributary_cluster", TAG_CLUSTER),
    ("tributary_kind", TAG_KIND),
    ("tributary_namespace", TAG_NAMESPACE),
    ("tributary_name", TAG_NAME),
];

/// The ownership marks of `owner`, as queue metadata.
pub fn marks(owner: &Owner<'_>) -> HashMap<String, String> {
    [owner.cluster, owner.kind, owner.namespace, owner.name]
        .into_iter()
        .zip(MARKS)
        .map(|(value, (key, _))| (key.to_owned(), value.to_owned()))
        .collect()
}

/// The ownership tags a queue's metadata carries (for [`ownership`]).
pub fn tags_of(metadata: &HashMap<String, String>) -> Tags {
    MARKS
        .iter()
        .filter_map(|(key, tag)| Some(((*tag).to_owned(), metadata.get(*key)?.clone())))
        .collect()
}

/// The queue name: `spec.azure.name`, else the name in the URL recorded in status (a live queue is never
/// renamed), else `<namespace>-<name>-<hash>` ([`crate::cloud::names::hashed_dns`]: lower case,
/// letters, digits and single dashes, at most 63 characters, distinct for distinct objects).
pub fn queue_name(
    namespace: &str,
    name: &str,
    location: &StorageQueueLocation,
    recorded: Option<&str>,
) -> String {
    if let Some(name) = &location.name {
        return name.clone();
    }
    crate::cloud::names::recorded_or(recorded, || crate::cloud::names::hashed_dns(namespace, name, 63))
}

/// The validate step for the key: storage queues are managed with the account key for now.
fn key_ref<'l, K: Kind>(
    owner: &K,
    location: &'l StorageQueueLocation,
) -> Result<&'l crate::api::common::SecretKeyRef, Error> {
    location
        .account_key_secret_ref
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec {
            object: describe(owner),
            message:
                "spec.azure.accountKeySecretRef is required: Storage Queues are managed with the account key \
                  (the controller's Azure identity is not used for them yet)"
                    .to_owned(),
        })
}

/// The storage account and its key from the referenced Secret (a missing Secret or key is waited for).
pub(crate) async fn account<K: Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    location: &StorageQueueLocation,
) -> Result<Account, Error> {
    let key_ref = key_ref(owner, location)?;
    let namespace = owner.namespace().unwrap_or_default();
    let field = "spec.azure.accountKeySecretRef";
    let key = secrets::read_key(&ctx.client, &namespace, &describe(owner), field, key_ref).await?;
    Ok(Account {
        name: location.storage_account.clone(),
        key: key.trim().to_owned(),
    })
}

/// Finds the queue or creates it with the ownership marks; an existing queue must be ours, or is adopted
/// when `adopt` and it has no Tributary mark, or is refused (`OwnedByAnother`, `AlreadyExists`).
/// `recorded` is the URL in status. Returns what status shows.
pub async fn ensure<K: Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    kind: &str,
    location: &StorageQueueLocation,
    adopt: bool,
    recorded: Option<&str>,
) -> Result<QueueObservation, Error> {
    let object = describe(owner);
    let err = |source| Error::cloud(&object, source);
    let account = account(ctx, owner, location).await?;
    let namespace = owner.namespace().unwrap_or_default();
    let name = queue_name(&namespace, &owner.name_any(), location, recorded);
    let queues = &ctx.azure;
    let url = queues.queue_url(&account.name, &name).map_err(err)?;
    let desired = marks(&ctx.owner(kind, owner));
    let observed = match queues.observe(&account, &name).await.map_err(err)? {
        None => {
            queues.create(&account, &name, &desired).await.map_err(err)?;
            let note = format!("created Storage Queue {url}");
            events::normal(&ctx.recorder, owner, reasons::CREATED, note).await;
            // Just created: empty, with the marks it was given; no need to ask.
            Observed {
                messages: 0,
                metadata: desired,
            }
        }
        Some(observed) => {
            let found = ownership(&tags_of(&observed.metadata), &ctx.owner(kind, owner), adopt);
            if let Some(refused) = refusal(&object, &format!("Storage Queue {name}"), &found) {
                return Err(refused);
            }
            if found != Ownership::Ours {
                // Adopted, or marked before cluster identities: (re)mark it, keeping other metadata.
                let mut metadata = observed.metadata.clone();
                metadata.extend(desired);
                queues
                    .set_metadata(&account, &name, &metadata)
                    .await
                    .map_err(err)?;
            }
            if found == Ownership::Adopt {
                let note = format!("adopted the existing Storage Queue {url}");
                events::normal(&ctx.recorder, owner, reasons::ADOPTED, note).await;
            }
            observed
        }
    };
    let stats = queues
        .stats(&account, &name, observed.messages)
        .await
        .map_err(err)?;
    Ok(QueueObservation {
        url: Some(url.to_string()),
        arn: None,
        depth: Some(stats.visible),
        oldest_message_age_seconds: stats.oldest_message_age_seconds,
    })
}

/// The approximate message count (visible and hidden) of `owner`'s queue, for the backlog of `object`
/// (a Consumer of it).
pub async fn depth<K: Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    location: &StorageQueueLocation,
    object: &str,
    recorded: Option<&str>,
) -> Result<i64, Error> {
    depth_and_age(ctx, owner, location, object, recorded, false)
        .await
        .map(|(depth, _)| depth)
}

/// [`depth`], and `with_age` the age of the oldest visible message (a peek more), for scaling on it.
pub async fn depth_and_age<K: Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    location: &StorageQueueLocation,
    object: &str,
    recorded: Option<&str>,
    with_age: bool,
) -> Result<(i64, Option<i64>), Error> {
    let account = account(ctx, owner, location).await?;
    let name = queue_name(
        &owner.namespace().unwrap_or_default(),
        &owner.name_any(),
        location,
        recorded,
    );
    let err = |source| Error::cloud(object, source);
    let observed = ctx.azure.observe(&account, &name).await.map_err(err)?;
    let messages = observed
        .map(|o| o.messages)
        .ok_or_else(|| Error::DependencyNotReady {
            object: object.to_owned(),
            message: format!("Storage Queue {name} does not exist"),
        })?;
    if !with_age || messages == 0 {
        return Ok((messages, None));
    }
    let stats = ctx.azure.stats(&account, &name, messages).await.map_err(err)?;
    Ok((messages, stats.oldest_message_age_seconds))
}

/// Cleanup: keep the queue (`Retain`), or delete it if it still carries this object's marks (read again
/// now). A queue that is not ours is never deleted (a Warning Event says it is kept); one already gone is
/// success. `recorded` is the URL in status.
pub async fn remove<K: Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    kind: &str,
    location: &StorageQueueLocation,
    policy: DeletionPolicy,
    recorded: Option<&str>,
) -> Result<(), Error> {
    if policy == DeletionPolicy::Retain {
        let note = "deletionPolicy is Retain: the Storage Queue is kept".to_owned();
        events::normal(&ctx.recorder, owner, reasons::RETAINED, note).await;
        return Ok(());
    }
    let object = describe(owner);
    let err = |source| Error::cloud(&object, source);
    let account = match account(ctx, owner, location).await {
        Ok(account) => account,
        // Without its key nothing can be deleted; the object must not hang in deletion for that.
        Err(Error::InvalidSpec { .. } | Error::DependencyNotReady { .. }) => {
            let note = "the account key is not available: the Storage Queue is left in place".to_owned();
            events::warning(&ctx.recorder, owner, reasons::RETAINED, note).await;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let namespace = owner.namespace().unwrap_or_default();
    let name = queue_name(&namespace, &owner.name_any(), location, recorded);
    let queues = &ctx.azure;
    let Some(observed) = queues.observe(&account, &name).await.map_err(err)? else {
        return Ok(());
    };
    let resource = format!("Storage Queue {name}");
    if let Some(note) = lost(&resource, &tags_of(&observed.metadata), &ctx.owner(kind, owner)) {
        events::warning(&ctx.recorder, owner, reasons::OWNERSHIP_LOST, note).await;
        return Ok(());
    }
    queues.delete(&account, &name).await.map_err(err)?;
    let url = queues.queue_url(&account.name, &name).map_err(err)?;
    events::normal(
        &ctx.recorder,
        owner,
        reasons::DELETED,
        format!("deleted Storage Queue {url}"),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_hashed_and_recorded_names_are_kept() {
        let location = StorageQueueLocation::default();
        let name = queue_name("shop", "orders", &location, None);
        assert!(name.starts_with("shop-orders-"), "{name}");
        assert_ne!(
            queue_name("a-b", "c", &location, None),
            queue_name("a", "b-c", &location, None)
        );
        let recorded = "https://acct.queue.core.windows.net/shop-orders";
        assert_eq!(
            queue_name("shop", "orders", &location, Some(recorded)),
            "shop-orders"
        );
        let named = StorageQueueLocation {
            name: Some("given".into()),
            ..StorageQueueLocation::default()
        };
        assert_eq!(queue_name("shop", "orders", &named, Some(recorded)), "given");
    }

    #[test]
    fn marks_read_back_as_ownership_tags() {
        let owner = Owner {
            cluster: "c1",
            kind: "Queue",
            namespace: "shop",
            name: "orders",
        };
        let metadata = marks(&owner);
        assert_eq!(ownership(&tags_of(&metadata), &owner, false), Ownership::Ours);
        let dead_letter = Owner {
            kind: "DeadLetter",
            ..owner
        };
        assert_eq!(
            ownership(&tags_of(&metadata), &dead_letter, true),
            Ownership::OwnedByAnother("it belongs to Queue shop/orders of cluster c1".into())
        );
        assert_eq!(
            ownership(&tags_of(&HashMap::new()), &owner, true),
            Ownership::Adopt
        );
        let mut legacy = metadata.clone();
        legacy.remove("tributary_cluster");
        assert_eq!(ownership(&tags_of(&legacy), &owner, false), Ownership::Legacy);
    }
}
