//! The SQS queue of a Queue or a DeadLetter, shared by both kinds: find it (by the URL recorded in
//! status, else by name) or create it, adopt or refuse one that is not ours, bring its tags in line, set
//! the attributes that differ, and delete it only while it still carries the object's tags.
//!
//! Every SetQueueAttributes call carries `Policy`: moto (unlike SQS) drops the queue policy on a call
//! that leaves it out, and sending the desired value is correct on both.

use crate::cloud::Queues as _;
use crate::{
    api::common::{DeletionPolicy, QueueObservation},
    cloud::{Attributes, Tags, aws::attributes::names},
    controller::{
        Cloud, Context,
        driver::{
            drift::{self, names_of},
            error::Error,
            events::{self, reasons},
            ownership::{Ownership, lost, missing_tags, ownership, refusal, stale_tags},
            status::{Kind, describe},
        },
    },
};

/// The URL recorded in status, if it is that of the queue named `name` (a renamed queue is looked up).
pub(crate) fn recorded_url<'a>(observed: Option<&'a QueueObservation>, name: &str) -> Option<&'a str> {
    observed
        .and_then(|o| o.url.as_deref())
        .filter(|url| url.rsplit('/').next() == Some(name))
}

/// An SQS queue found or created, with its attributes as observed.
pub(crate) struct Ensured {
    pub url: String,
    pub arn: String,
    pub created: bool,
    pub attributes: Attributes,
}

/// The SQS queue an object asks for.
pub(crate) struct Target<'a> {
    /// Queue name.
    pub name: &'a str,
    /// Attributes to create it with.
    pub attributes: &'a Attributes,
    /// Spec tags plus ownership tags.
    pub tags: &'a Tags,
    /// `spec.adopt`.
    pub adopt: bool,
    /// The URL recorded in status for this name: no lookup by name while it is there.
    pub recorded: Option<&'a str>,
}

/// Finds the queue (by the URL recorded in status, else by name) or creates it with its attributes and
/// tags; an existing queue must be ours, or is adopted when `adopt` and it carries no Tributary tag, or is
/// refused (`OwnedByAnother`, `AlreadyExists`). Missing tags are added and, on a queue already ours, tags
/// the spec no longer has are removed.
pub(crate) async fn ensure_queue<K: Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    kind: &str,
    target: &Target<'_>,
) -> Result<Ensured, Error> {
    let object = describe(owner);
    let err = |source| Error::cloud(&object, source);
    let cloud = &ctx.aws;
    let mut found = None;
    if let Some(url) = target.recorded {
        match cloud.queue_tags(url).await {
            Ok(tags) => found = Some((url.to_owned(), tags)),
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(err(error)),
        }
    }
    if found.is_none()
        && let Some(url) = cloud.find_queue(target.name).await.map_err(err)?
    {
        let tags = cloud.queue_tags(&url).await.map_err(err)?;
        found = Some((url, tags));
    }
    let (url, created) = match found {
        None => match cloud
            .create_queue(target.name, target.attributes, target.tags)
            .await
        {
            Ok(url) => {
                let note = format!("created SQS queue {url}");
                events::normal(&ctx.recorder, owner, reasons::CREATED, note).await;
                (url, true)
            }
            // Made by someone else since the lookup (with other attributes): judge it as found.
            Err(refused) if is_name_taken(&refused) => {
                let url = cloud
                    .find_queue(target.name)
                    .await
                    .map_err(err)?
                    .ok_or_else(|| err(refused))?;
                let observed_tags = cloud.queue_tags(&url).await.map_err(err)?;
                claim(ctx, owner, kind, target, &url, &observed_tags).await?;
                (url, false)
            }
            Err(error) => return Err(err(error)),
        },
        Some((url, observed_tags)) => {
            claim(ctx, owner, kind, target, &url, &observed_tags).await?;
            (url, false)
        }
    };
    let attributes = cloud.queue_attributes(&url).await.map_err(err)?;
    let arn = attributes.get(names::QUEUE_ARN).cloned().ok_or_else(|| {
        err(crate::cloud::Error::Response {
            operation: crate::cloud::Operation::new("sqs", "GetQueueAttributes", url.clone()),
            detail: "the answer has no QueueArn".to_owned(),
        })
    })?;
    Ok(Ensured {
        url,
        arn,
        created,
        attributes,
    })
}

/// Whether SQS refused a CreateQueue because a queue of that name exists with other attributes
/// (`QueueNameExists`, sent as `QueueAlreadyExists` by some servers).
fn is_name_taken(error: &crate::cloud::Error) -> bool {
    matches!(error, crate::cloud::Error::Service { code, .. }
        if code.ends_with("QueueNameExists") || code.ends_with("QueueAlreadyExists"))
}

/// An existing queue: refused unless ours or adoptable; adopted (tagged) or its tags brought in line.
async fn claim<K: Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    kind: &str,
    target: &Target<'_>,
    url: &str,
    observed_tags: &Tags,
) -> Result<(), Error> {
    let object = describe(owner);
    let err = |source| Error::cloud(&object, source);
    let cloud = &ctx.aws;
    let found = ownership(observed_tags, &ctx.owner(kind, owner), target.adopt);
    if let Some(refused) = refusal(&object, &format!("SQS queue {}", target.name), &found) {
        return Err(refused);
    }
    if found == Ownership::Adopt {
        cloud.tag_queue(url, target.tags).await.map_err(err)?;
        let note = format!("adopted the existing SQS queue {url}");
        events::normal(&ctx.recorder, owner, reasons::ADOPTED, note).await;
    } else {
        cloud
            .tag_queue(url, &missing_tags(target.tags, observed_tags))
            .await
            .map_err(err)?;
        cloud
            .untag_queue(url, &stale_tags(target.tags, observed_tags))
            .await
            .map_err(err)?;
    }
    Ok(())
}

/// Sets the attributes that differ from `desired` in one call (with `Policy`, see the module doc) and
/// returns their names (empty when in sync). An immutable difference is refused with `ImmutableChange`.
pub(crate) async fn sync_attributes<K: Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    ensured: &Ensured,
    desired: &Attributes,
) -> Result<String, Error> {
    let object = describe(owner);
    let changes = drift::diff(desired, &ensured.attributes);
    if let Some(change) = changes.immutable.first() {
        return Err(Error::ImmutableChange {
            object,
            message: format!(
                "SQS cannot change {} of queue {} in place (it is {:?}, the spec asks for {:?}); create a new \
                 object with another name",
                change.name, ensured.url, change.observed, change.desired
            ),
        });
    }
    if changes.to_set.is_empty() {
        return Ok(String::new());
    }
    let mut set = changes.to_set_map();
    set.insert(
        names::POLICY.to_owned(),
        desired.get(names::POLICY).cloned().unwrap_or_default(),
    );
    ctx.aws
        .set_queue_attributes(&ensured.url, &set)
        .await
        .map_err(|source| Error::cloud(&object, source))?;
    Ok(names_of(&changes))
}

/// Cleanup of a Queue or DeadLetter: keep the queue (`Retain`), or delete it (by the URL in status, else
/// by name) if it still carries this object's tags, read again now. A queue that is not ours is never
/// deleted: it is kept, with a Warning Event.
pub(crate) async fn delete_queue<K: Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    kind: &str,
    policy: DeletionPolicy,
    url: Option<String>,
    name: Option<String>,
) -> Result<(), Error> {
    if policy == DeletionPolicy::Retain {
        let note = "deletionPolicy is Retain: the SQS queue is kept".to_owned();
        events::normal(&ctx.recorder, owner, reasons::RETAINED, note).await;
        return Ok(());
    }
    let object = describe(owner);
    let err = |source| Error::cloud(&object, source);
    let url = match (url, name) {
        (Some(url), _) => url,
        (None, Some(name)) => match ctx.aws.find_queue(&name).await.map_err(err)? {
            Some(url) => url,
            None => return Ok(()),
        },
        (None, None) => return Ok(()),
    };
    // The marks are read again right before the delete: the queue may have been retagged since.
    let tags = match ctx.aws.queue_tags(&url).await {
        Ok(tags) => tags,
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(err(error)),
    };
    if let Some(note) = lost(&format!("SQS queue {url}"), &tags, &ctx.owner(kind, owner)) {
        events::warning(&ctx.recorder, owner, reasons::OWNERSHIP_LOST, note).await;
        return Ok(());
    }
    ctx.aws.delete_queue(&url).await.map_err(err)?;
    let note = format!("deleted SQS queue {url}");
    events::normal(&ctx.recorder, owner, reasons::DELETED, note).await;
    Ok(())
}
