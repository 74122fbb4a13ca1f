//! The leader's fence: "this process may act until instant T", set by leader election and checked before
//! every cloud call and every write to the API server. The check is one atomic load and a read of the
//! monotonic clock, so it sits in the hot paths (an SDK interceptor per AWS attempt, the Resource Manager
//! client, the storage queue client, the Kubernetes client's tower stack) at no real cost.
//!
//! Time, not a flag set by the renewing task, is what closes the fence: a process frozen (SIGSTOP, a long
//! GC-like stall, a suspended VM) wakes up with its renewing task not yet run, and the first thing that
//! runs may be a reconcile about to call the cloud. That call finds the instant passed and is refused, so
//! a replica that lost its lease cannot act, whichever of its tasks runs first.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use futures::future::{Either, Ready, ready};
// The `http` crate of kube's requests, through axum, which re-exports it.
use axum::http::{Method, Request};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

/// Whether this process may act, and until when. Cheap to clone: clones share the instant.
#[derive(Clone, Debug)]
pub struct Fence {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The instants below are nanoseconds after this one.
    origin: Instant,
    /// Open while `now - origin` is below this; 0 is closed, `u64::MAX` open for good.
    until_nanos: AtomicU64,
}

/// The refusal of a fenced call: this replica no longer holds (or never held) the leader lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not sent: this replica does not hold the leader lease (another replica may lead now)")]
pub struct NotLeading;

impl Fence {
    /// A fence that never closes, for processes without leader election (workers, tests, tools).
    pub fn open() -> Self {
        Self::with_nanos(u64::MAX)
    }

    /// A closed fence, opened by [`Fence::open_until`] once the lease is held.
    pub fn closed() -> Self {
        Self::with_nanos(0)
    }

    fn with_nanos(nanos: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                until_nanos: AtomicU64::new(nanos),
            }),
        }
    }

    /// Lets calls through until `until` (a renewal extends it; an earlier instant shortens it).
    pub fn open_until(&self, until: Instant) {
        let nanos = until.saturating_duration_since(self.inner.origin).as_nanos();
        // At least 1: 0 means closed, and an instant at the origin has passed anyway.
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX - 1).max(1);
        self.inner.until_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Refuses every call from now on.
    pub fn close(&self) {
        self.inner.until_nanos.store(0, Ordering::SeqCst);
    }

    /// Whether a call may go out now.
    pub fn is_open(&self) -> bool {
        self.is_open_at(Instant::now())
    }

    /// Whether a call may go out at `now` (the pure form, for tests with a chosen clock).
    pub fn is_open_at(&self, now: Instant) -> bool {
        let until = self.inner.until_nanos.load(Ordering::SeqCst);
        if until == u64::MAX {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.inner.origin).as_nanos();
        u128::from(until) > elapsed
    }

    /// `Ok` when a call may go out now, else the refusal to return instead of making it.
    pub fn check(&self) -> Result<(), NotLeading> {
        if self.is_open() { Ok(()) } else { Err(NotLeading) }
    }
}

/// A tower layer for the Kubernetes client: while the fence is closed, writes (POST, PUT, PATCH,
/// DELETE) fail with [`NotLeading`] without being sent; reads and watches go through, so a standby's
/// caches stay warm and nothing it reads can change the cluster.
#[derive(Clone, Debug)]
pub struct FenceLayer {
    fence: Fence,
}

impl FenceLayer {
    /// Writes through the stack it wraps are checked against `fence`.
    pub fn new(fence: Fence) -> Self {
        Self { fence }
    }
}

impl<S> Layer<S> for FenceLayer {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Fenced {
            inner,
            fence: self.fence.clone(),
        }
    }
}

/// The service of [`FenceLayer`].
#[derive(Clone, Debug)]
pub struct Fenced<S> {
    inner: S,
    fence: Fence,
}

/// Whether a request of `method` changes something on the server.
pub fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The inner call with its error boxed.
type Sent<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, B> Service<Request<B>> for Fenced<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Either<Ready<Result<S::Response, BoxError>>, Sent<S::Response>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if is_write(request.method())
            && let Err(refused) = self.fence.check()
        {
            tracing::warn!(method = %request.method(), uri = %request.uri(), "{refused}");
            return Either::Left(ready(Err(refused.into())));
        }
        let call = self.inner.call(request);
        Either::Right(Box::pin(async move { call.await.map_err(Into::into) }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_fence_is_open_until_its_instant_and_closed_from_then() {
        let fence = Fence::closed();
        let now = Instant::now();
        assert!(!fence.is_open_at(now), "closed until opened");
        fence.open_until(now + Duration::from_secs(10));
        assert!(fence.is_open_at(now));
        assert!(fence.is_open_at(now + Duration::from_millis(9_999)));
        assert!(
            !fence.is_open_at(now + Duration::from_secs(10)),
            "the instant itself is past"
        );
        assert!(!fence.is_open_at(now + Duration::from_secs(3600)));
        // A renewal moves the instant; clones see it.
        let clone = fence.clone();
        fence.open_until(now + Duration::from_secs(20));
        assert!(clone.is_open_at(now + Duration::from_secs(15)));
        clone.close();
        assert!(!fence.is_open_at(now));
        assert_eq!(fence.check(), Err(NotLeading));
    }

    #[test]
    fn an_open_fence_never_closes_by_time() {
        let fence = Fence::open();
        assert!(fence.is_open_at(Instant::now() + Duration::from_secs(1_000_000)));
        assert_eq!(fence.check(), Ok(()));
    }

    #[test]
    fn reads_are_never_fenced() {
        assert!(!is_write(&Method::GET));
        assert!(!is_write(&Method::HEAD));
        for write in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_write(&write), "{write}");
        }
    }

    #[tokio::test]
    async fn the_layer_refuses_writes_but_not_reads_when_closed() {
        use tower::ServiceExt as _;
        let fence = Fence::closed();
        let sent = Arc::new(AtomicU64::new(0));
        let counted = sent.clone();
        let inner = tower::service_fn(move |_: Request<()>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::convert::Infallible>("sent") }
        });
        let service = FenceLayer::new(fence.clone()).layer(inner);
        let request = |method: Method| Request::builder().method(method).body(()).unwrap_or_default();
        let read = service.clone().oneshot(request(Method::GET)).await;
        assert_eq!(read.ok(), Some("sent"));
        let write = service.clone().oneshot(request(Method::PATCH)).await;
        assert!(write.is_err_and(|e| e.is::<NotLeading>()));
        assert_eq!(sent.load(Ordering::SeqCst), 1, "the refused write was not sent");
        fence.open_until(Instant::now() + Duration::from_secs(60));
        let write = service.oneshot(request(Method::PATCH)).await;
        assert_eq!(write.ok(), Some("sent"));
    }
}
