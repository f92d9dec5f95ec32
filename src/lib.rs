//! Tributary: a local-first, open-source alternative to Amazon AppFlow.
//!
//! A flow ([`flow::Flow`]) joins source, transform and destination nodes. It is validated
//! and planned ([`flow::validate`]), then run by the engine ([`engine::run`]) as tokio tasks
//! passing Arrow record batches. The app and the command line share all of it.

pub mod airflow;
pub mod appflow;
pub mod auth;
pub mod codecs;
pub mod conditions;
pub mod connectors;
pub mod cost;
pub mod engine;
pub mod fields;
pub mod flow;
pub mod kubernetes;
pub mod node;
pub mod paths;
pub mod pg_tls;
pub mod records;
pub mod registry;
pub mod schema;
pub mod serde_words;
pub mod service;
pub mod state;
#[cfg(test)]
mod testing;
pub mod transforms;
pub mod types;
pub mod ui;
pub mod workspace;
