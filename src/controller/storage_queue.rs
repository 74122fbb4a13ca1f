//! Queue and DeadLetter on `azure`: an Azure Storage Queue. validate: the `azure` block and its account key
//! reference → dependencies: the key, from the referenced Secret → build: the queue name and the ownership
//! marks → apply: find or create, adopt or refuse, mark → status: URL, depth, oldest message age.
//!
//! A storage queue has no tags, so the ownership marks live in its metadata (names must be identifiers:
//! `tributary_kind`, `tributary_namespace`, `tributary_name`). It has no queue-wide visibility timeout or
//! time to live (both are set per message, by the workers), and no dead-lettering or redrive of its own:
//! the workers dead-letter (`cloud::azure::work_queue`).

use std::collections::HashMap;

use kube::ResourceExt;

use super::{
    Context,
    error::Error,
    events::{self, reasons},
    ownership::{Ownership, TAG_KIND, TAG_NAME, TAG_NAMESPACE, ownership},
    secrets,
    status::{Kind, describe},
};
use crate::{
    api::common::{DeletionPolicy, QueueObservation, StorageQueueLocation},
    cloud::{
        Tags,
        azure::storage_queues::{Account, Observed},
    },
};

/// Metadata names of the ownership marks, and the ownership tags they stand for.
const MARKS: [(&str, &str); 3] = [
    ("tributary_kind", TAG_KIND),
    ("tributary_namespace", TAG_NAMESPACE),
    ("tributary_name", TAG_NAME),
];

/// The ownership marks of the object `kind` `namespace/name`, as queue metadata.
pub fn marks(kind: &str, namespace: &str, name: &str) -> HashMap<String, String> {
    [kind, namespace, name]
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

/// The queue name: `spec.azure.name`, or `<namespace>-<name>` made a valid queue name (lower case,
/// letters, digits and single dashes, at most 63 characters).
pub fn queue_name(namespace: &str, name: &str, location: &StorageQueueLocation) -> String {
    if let Some(name) = &location.name {
        return name.clone();
    }
    let mut out = String::new();
    for c in format!("{namespace}-{name}").chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    out.truncate(63);
    out.trim_end_matches('-').to_owned()
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
pub(crate) async fn account<K: Kind, C>(
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
/// when `adopt`, or is refused with `AlreadyExists`. Returns what status shows.
pub async fn ensure<K: Kind, C>(
    ctx: &Context<C>,
    owner: &K,
    kind: &str,
    location: &StorageQueueLocation,
    adopt: bool,
) -> Result<QueueObservation, Error> {
    let object = describe(owner);
    let err = |source| Error::cloud(&object, source);
    let account = account(ctx, owner, location).await?;
    let namespace = owner.namespace().unwrap_or_default();
    let name = queue_name(&namespace, &owner.name_any(), location);
    let queues = &ctx.config.storage;
    let url = queues.queue_url(&account.name, &name).map_err(err)?;
    let desired = marks(kind, &namespace, &owner.name_any());
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
            match ownership(
                &tags_of(&observed.metadata),
                kind,
                &namespace,
                &owner.name_any(),
                adopt,
            ) {
                Ownership::Ours => {}
                Ownership::Adopt => {
                    let mut metadata = observed.metadata.clone();
                    metadata.extend(desired);
                    queues
                        .set_metadata(&account, &name, &metadata)
                        .await
                        .map_err(err)?;
                    let note = format!("adopted the existing Storage Queue {url}");
                    events::normal(&ctx.recorder, owner, reasons::ADOPTED, note).await;
                }
                Ownership::Foreign(who) => {
                    return Err(Error::AlreadyExists {
                        object,
                        message: format!(
                            "Storage Queue {name} exists and {who}; set spec.adopt: true to take it over"
                        ),
                    });
                }
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
pub async fn depth<K: Kind, C>(
    ctx: &Context<C>,
    owner: &K,
    location: &StorageQueueLocation,
    object: &str,
) -> Result<i64, Error> {
    let account = account(ctx, owner, location).await?;
    let name = queue_name(
        &owner.namespace().unwrap_or_default(),
        &owner.name_any(),
        location,
    );
    let observed = ctx
        .config
        .storage
        .observe(&account, &name)
        .await
        .map_err(|source| Error::cloud(object, source))?;
    observed
        .map(|o| o.messages)
        .ok_or_else(|| Error::DependencyNotReady {
            object: object.to_owned(),
            message: format!("Storage Queue {name} does not exist"),
        })
}

/// Cleanup: keep the queue (`Retain`), or delete it if it carries this object's marks. A queue that is
/// not ours is never deleted; one already gone is success.
pub async fn remove<K: Kind, C>(
    ctx: &Context<C>,
    owner: &K,
    kind: &str,
    location: &StorageQueueLocation,
    policy: DeletionPolicy,
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
    let name = queue_name(&namespace, &owner.name_any(), location);
    let queues = &ctx.config.storage;
    let Some(observed) = queues.observe(&account, &name).await.map_err(err)? else {
        return Ok(());
    };
    if ownership(
        &tags_of(&observed.metadata),
        kind,
        &namespace,
        &owner.name_any(),
        false,
    ) != Ownership::Ours
    {
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
    fn default_names_are_valid_queue_names() {
        let location = StorageQueueLocation::default();
        assert_eq!(queue_name("shop", "orders", &location), "shop-orders");
        assert_eq!(queue_name("team.a", "Orders--x", &location), "team-a-orders-x");
        let long = queue_name(&"n".repeat(40), &"q".repeat(40), &location);
        assert_eq!(long.len(), 63);
        assert!(!queue_name("a", &format!("{}-b", "x".repeat(60)), &location).ends_with('-'));
        let named = StorageQueueLocation {
            name: Some("given".into()),
            ..StorageQueueLocation::default()
        };
        assert_eq!(queue_name("shop", "orders", &named), "given");
    }

    #[test]
    fn marks_read_back_as_ownership_tags() {
        let metadata = marks("Queue", "shop", "orders");
        assert_eq!(
            ownership(&tags_of(&metadata), "Queue", "shop", "orders", false),
            Ownership::Ours
        );
        assert_eq!(
            ownership(&tags_of(&metadata), "DeadLetter", "shop", "orders", false),
            Ownership::Foreign("it belongs to Queue shop/orders".into())
        );
        assert_eq!(
            ownership(&tags_of(&HashMap::new()), "Queue", "shop", "orders", true),
            Ownership::Adopt
        );
    }
}
