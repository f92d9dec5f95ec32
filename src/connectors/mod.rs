//! Source and destination nodes: one module per connector, listed in the registry.

pub mod demo_crm;
pub mod file;
pub mod formats;
pub mod http;
pub mod layout;
pub mod local;
pub mod output;
pub mod s3;
