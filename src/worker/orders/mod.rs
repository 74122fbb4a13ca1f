//! The order pipeline's processors: the domain ([`model`]), what they need of the Order table
//! ([`store`], on DynamoDB in [`table`]) and of the topic ([`publish`]), the order REST endpoint ([`ingress`], processor
//! `order-ack`) with what protects it ([`security`]) and the queue processors ([`processors`]: notification, inventory, shipment).

pub mod ingress;
pub mod model;
pub mod processors;
pub mod publish;
pub mod security;
pub mod store;
pub mod table;
