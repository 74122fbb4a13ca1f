//! Every test against the test bed (`make testbed-up`), in one binary so that a build links the library
//! with its AWS, Azure and Kafka clients once. Each module is one area; `cargo test --test it chart::`
//! runs one of them, and `cargo test --test it -- --list` lists every test by its module path.
//!
//! The tests run at once in this one process (`make test` runs those sharing the test bed four at a time,
//! then those holding it alone one by one), so what they share lives
//! in [`support`]: names from [`support::unique`] never collide, and each test that reaches the test bed
//! holds it for its whole run, [`support::shared`] alongside others or [`support::exclusive`] alone.

mod support;

mod admission_webhook;
mod api_rejections;
mod api_server;
mod argocd_health;
mod chart;
mod cloud_aws;
mod cloud_azure;
mod controller_aws;
mod controller_azure;
mod controller_consumer;
mod controller_consumer_counts;
mod controller_consumer_resources;
mod controller_device_stream;
mod controller_startup;
mod controller_subscription;
mod crash_points;
mod e2e_azure_queue;
mod e2e_azure_subscription;
mod e2e_custom;
mod e2e_devices;
mod e2e_orders;
mod faults_outage;
mod faults_readiness;
mod faults_worker;
mod filter_differential;
mod filter_webhook;
mod image;
mod inspect_tree;
mod operate_leader;
mod operate_leader_fencing;
mod operate_metrics;
// The chart and the pipelines on the real node (they fail saying so without it, like testbed_node).
mod pods_chart;
mod pods_custom;
mod pods_devices;
mod pods_orders;
mod security_endpoint;
mod tenants;
mod testbed_aws;
mod testbed_azure;
mod testbed_helm;
mod testbed_kafka;
mod testbed_kubernetes;
// They need the real node (testbed/up.sh starts it as root; docs/testbed-node.md), and fail saying so without.
mod testbed_node;
mod webhook_availability;
mod worker_azure;
mod worker_delivery;
mod worker_devices;
mod worker_fifo;
mod worker_orders;
mod worker_outbox;
mod worker_runtime;
