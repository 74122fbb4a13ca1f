//! In-memory fakes of the cloud capabilities, for fast unit tests of the decisions made on them: the
//! message-queue contract ([`FakeQueue`], [`FakeQueues`]), the AWS capability traits ([`FakeAws`], its
//! DynamoDB tables and items included) and the Azure ones ([`FakeAzure`]).
//! They keep the clouds' observable rules (idempotent creates, conflicts, absent as `NotFound`, receipt
//! handles that go stale), not their performance or limits. Real servers stay the proof, in the
//! integration tests.

mod aws;
mod azure;
mod documents;
mod moves;
mod queue;
mod tables;

pub use aws::FakeAws;
pub use azure::{FakeAzure, FakeHub, FakeProducer, SentEvent};
pub use documents::FakeDocuments;
pub use queue::{FakeQueue, FakeQueues, Held};
