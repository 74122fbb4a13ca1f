//! `tributary trace`: one message's journey across processors, from the spans the workers exported
//! (OTLP JSON, [`spans`]). A journey is one trace: the order endpoint starts it and every hop continues
//! it (W3C trace context in each message), so an order is found by the `order.id` attribute of its
//! `POST /orders` span, or named by its trace id directly ([`journey`]).

pub mod journey;
pub mod spans;
