//! AWS: SNS topics and subscriptions, SQS queues and messages ([`queue`]), the Order table, behind the capability traits of
//! [`crate::cloud::traits`]. [`AwsCloud`] is built from an `aws_config::SdkConfig`, so credentials come
//! from the standard chain (environment, profile, web identity for IRSA, instance metadata) and the
//! endpoint override from the config or `AWS_ENDPOINT_URL` (how the tests reach moto).
//!
//! Every call first waits for its API action's token bucket ([`ratelimit`]), then goes through the
//! SDK (which retries throttling and transient failures itself), and every failure comes back as a
//! classified [`crate::cloud::Error`] ([`error`]). The pure build and compare steps the controllers use
//! with this module are [`attributes`] and [`compare`]. Built with a [`Metrics`], every SDK call is also
//! counted and timed (`tributary_cloud_calls_total`, `tributary_cloud_call_duration_seconds`) by an SDK
//! interceptor on each client.

pub mod attributes;
mod call_metrics;
mod canonical;
pub mod compare;
pub mod error;
mod fencing;
mod messages;
pub mod publisher;
pub mod queue;
pub mod ratelimit;
mod sns;
mod sqs;
pub mod tables;

use std::{sync::Arc, time::Duration};

use aws_config::{BehaviorVersion, SdkConfig, timeout::TimeoutConfig};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use tokio::sync::OnceCell;

use self::{
    call_metrics::CallMetrics,
    fencing::FenceInterceptor,
    ratelimit::{Limiter, RateLimits},
};
use crate::{
    cloud::{Error, Operation, Result},
    operate::{Fence, Metrics},
};

pub use error::is_message_move_unsupported;
pub use publisher::SnsPublisher;
pub use queue::SqsQueue;
pub use sqs::queue_stats_from;

const SNS: &str = "sns";
const SQS: &str = "sqs";
const STS: &str = "sts";

/// The AWS implementation of the cloud traits. Cheap to clone: clones share clients, rate limits and the
/// cached account id.
#[derive(Clone, Debug)]
pub struct AwsCloud {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    sts: aws_sdk_sts::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    /// Tables known to exist: ensured once per process, not on every reconcile.
    tables: std::sync::Mutex<std::collections::HashSet<String>>,
    region: Option<String>,
    /// The caller's account id, from STS on first use: topic ARNs are built from it.
    account: OnceCell<String>,
    limiter: Arc<Limiter>,
}

impl AwsCloud {
    /// Clients for the given configuration, with the published rate limits of its Region.
    pub fn new(config: &SdkConfig) -> Self {
        let region = config.region().map(ToString::to_string);
        Self::with_limits(config, &RateLimits::published(region.as_deref()))
    }

    /// Clients for the given configuration and client-side rate limits.
    pub fn with_limits(config: &SdkConfig, limits: &RateLimits) -> Self {
        Self::build(config, limits, None, None)
    }

    /// Clients for the given configuration and client-side rate limits, recording every SDK call in
    /// `metrics` ([`Metrics::cloud_call`]).
    pub fn with_limits_and_metrics(config: &SdkConfig, limits: &RateLimits, metrics: Metrics) -> Self {
        Self::build(config, limits, Some(metrics), None)
    }

    fn build(
        config: &SdkConfig,
        limits: &RateLimits,
        metrics: Option<Metrics>,
        fence: Option<Fence>,
    ) -> Self {
        // The interceptors are added per client config: an SdkConfig carries no interceptors of its own.
        let mut sns = aws_sdk_sns::config::Builder::from(config);
        let mut sqs = aws_sdk_sqs::config::Builder::from(config);
        let mut sts = aws_sdk_sts::config::Builder::from(config);
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(config);
        if let Some(fence) = fence {
            sns.push_interceptor(SharedInterceptor::new(FenceInterceptor::new(fence.clone())));
            sqs.push_interceptor(SharedInterceptor::new(FenceInterceptor::new(fence.clone())));
            sts.push_interceptor(SharedInterceptor::new(FenceInterceptor::new(fence.clone())));
            dynamodb.push_interceptor(SharedInterceptor::new(FenceInterceptor::new(fence)));
        }
        if let Some(metrics) = metrics {
            sns.push_interceptor(SharedInterceptor::new(CallMetrics::new(metrics.clone())));
            sqs.push_interceptor(SharedInterceptor::new(CallMetrics::new(metrics.clone())));
            sts.push_interceptor(SharedInterceptor::new(CallMetrics::new(metrics.clone())));
            dynamodb.push_interceptor(SharedInterceptor::new(CallMetrics::new(metrics)));
        }
        Self {
            inner: Arc::new(Inner {
                sns: aws_sdk_sns::Client::from_conf(sns.build()),
                sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
                sts: aws_sdk_sts::Client::from_conf(sts.build()),
                dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
                tables: std::sync::Mutex::default(),
                region: config.region().map(ToString::to_string),
                account: OnceCell::new(),
                limiter: Arc::new(Limiter::new(limits)),
            }),
        }
    }

    /// Clients configured from the environment: the standard credential chain, region and endpoint
    /// (`AWS_REGION`, `AWS_ENDPOINT_URL`, profiles), with timeouts so that a server that does not answer
    /// fails the call instead of hanging a reconcile: 5 s to connect, 30 s per attempt (more than the
    /// 20 s long-polling wait of a receive), 90 s per call including the SDK's retries.
    pub async fn from_env() -> Self {
        Self::new(&Self::config_from_env().await)
    }

    /// [`Self::from_env`], recording every SDK call in `metrics`, with the published rate limits of the
    /// configured Region and `overrides` (see [`RateLimits::with`]), sending nothing while `fence` is
    /// closed (each attempt is refused, recorded with outcome `fenced`); also returns the limits in force.
    pub async fn from_env_with_metrics(
        metrics: Metrics,
        overrides: &[String],
        fence: Fence,
    ) -> std::result::Result<(Self, RateLimits), String> {
        let config = Self::config_from_env().await;
        let region = config.region().map(ToString::to_string);
        let limits = overrides
            .iter()
            .try_fold(RateLimits::published(region.as_deref()), |limits, spec| {
                limits.with(spec)
            })?;
        Ok((Self::build(&config, &limits, Some(metrics), Some(fence)), limits))
    }

    /// The SDK configuration [`Self::from_env`] uses, for other clients of the same account (workers).
    pub async fn config_from_env() -> SdkConfig {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(90))
            .build();
        aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .load()
            .await
    }

    /// The configured region, if any.
    pub fn region(&self) -> Option<&str> {
        self.inner.region.as_deref()
    }

    /// The caller's account id (STS `GetCallerIdentity`, asked once and cached).
    pub async fn account_id(&self) -> Result<&str> {
        let account = self
            .inner
            .account
            .get_or_try_init(|| async {
                let operation = Operation::new(STS, "GetCallerIdentity", "caller");
                self.limit(&operation).await;
                let output = self
                    .inner
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| error::from_sdk(operation.clone(), e))?;
                output.account.ok_or_else(|| error::missing(operation, "Account"))
            })
            .await?;
        Ok(account)
    }

    /// The region, or an error naming the operation that needed it.
    fn required_region(&self, operation: &Operation) -> Result<&str> {
        self.region().ok_or_else(|| Error::Invalid {
            operation: operation.clone(),
            detail: "no AWS region is configured (set AWS_REGION)".into(),
        })
    }

    /// Waits for the rate limit of `operation`'s action.
    async fn limit(&self, operation: &Operation) {
        self.inner
            .limiter
            .acquire(operation.service, operation.name)
            .await;
    }
}

impl crate::cloud::Tables for AwsCloud {
    async fn ensure_table(&self, name: &str) -> Result<()> {
        let known = |tables: &std::sync::Mutex<std::collections::HashSet<String>>| {
            tables
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(name)
        };
        if known(&self.inner.tables) {
            return Ok(());
        }
        tables::ensure_order_table(&self.inner.dynamodb, name).await?;
        self.inner
            .tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned());
        Ok(())
    }
}
