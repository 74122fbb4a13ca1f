//! In-memory fakes of the cloud capabilities, for fast unit tests of the decisions made on them: the
//! message-queue contract ([`FakeQueue`], [`FakeQueues`]) and the AWS capability traits ([`FakeAws`]).
//! They keep the clouds' observable rules (idempotent creates, conflicts, absent as `NotFound`, receipt
//! handles that go stale), not their performance or limits. Real servers stay the proof, in the
//! integration tests.

mod aws;
mod documents;
mod moves;
mod queue;

pub use aws::FakeAws;
pub use documents::FakeDocuments;
pub use queue::{FakeQueue, FakeQueues, Held};
