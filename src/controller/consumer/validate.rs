//! Validate step of the Consumer reconciler, pure: the rules of one Consumer's own spec that the CEL
//! rules state too. The API server enforces those on writes; a Consumer stored before `spec.image` was
//! replaced by `spec.container` lost `image` to structural pruning and has neither processor nor
//! container, which the controller reports here as `InvalidSpec` naming the field instead of running it.

use crate::api::{Consumer, consumer::WORKER_PORTS};
use crate::controller::driver::{error::Error, status::describe};

/// The rules of `consumer`'s spec that need no other object.
pub fn validate(consumer: &Consumer) -> Result<(), Error> {
    let spec = &consumer.spec;
    let invalid = |message: &str| {
        Err(Error::InvalidSpec {
            object: describe(consumer),
            message: message.to_owned(),
        })
    };
    match (&spec.processor, &spec.container) {
        (Some(_), Some(_)) | (None, None) => {
            return invalid(
                "spec.processor / spec.container: set exactly one (spec.image was replaced by \
                 spec.container: move the image there and serve the delivery contract, \
                 docs/processors/contract.md)",
            );
        }
        _ => {}
    }
    if spec.delivery.is_some() && spec.container.is_none() {
        return invalid("spec.delivery configures the delivery to spec.container: it needs spec.container");
    }
    let Some(container) = &spec.container else {
        return Ok(());
    };
    if spec.source.http.is_some() {
        return invalid(
            "spec.container cannot serve spec.source.http: the HTTP source is the order endpoint of \
             processor order-ack; feed your container from a Queue or a DeviceStream",
        );
    }
    if WORKER_PORTS.contains(&container.port) {
        return invalid(&format!(
            "spec.container.port {} is the worker's own port: choose another",
            container.port
        ));
    }
    Ok(())
}
