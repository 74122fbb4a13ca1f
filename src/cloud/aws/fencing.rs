//! An SDK interceptor that refuses every attempt of an AWS call while the leader [`Fence`] is closed: the
//! check runs right before each attempt is transmitted (after the rate limiter's wait and the signing,
//! and again before each of the SDK's retries), so a controller that lost its lease sends nothing more.

use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::{Intercept, context::BeforeTransmitInterceptorContextRef},
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use crate::operate::Fence;

/// Refuses attempts while `fence` is closed; attach one to every client config of a leader.
#[derive(Debug)]
pub(super) struct FenceInterceptor {
    fence: Fence,
}

impl FenceInterceptor {
    pub(super) fn new(fence: Fence) -> Self {
        Self { fence }
    }
}

/// Left in the call's config bag when the fence refused it, so the metrics record it as `fenced`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Refused;

impl Storable for Refused {
    type Storer = StoreReplace<Self>;
}

impl Intercept for FenceInterceptor {
    fn name(&self) -> &'static str {
        "TributaryLeaderFence"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.fence.check().map_err(|refused| {
            cfg.interceptor_state().store_put(Refused);
            BoxError::from(refused)
        })
    }
}
