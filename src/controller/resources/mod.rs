//! What two kinds manage alike, so that no kind reaches into another: the SQS queue of a Queue or a
//! DeadLetter ([`sqs_queue`]), their Azure Storage Queue ([`storage_queue`]), a DeviceStream's Event Hub
//! as its readers reach it ([`event_hub`]), and the worker objects of a Consumer or a Subscription relay
//! ([`workers`]).

pub mod event_hub;
pub mod sqs_queue;
pub mod storage_queue;
pub mod workers;
