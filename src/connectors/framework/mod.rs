//! What every SaaS connector shares, so that a connector is what it knows about its service
//! and nothing else: incremental pulls ([`watermark`]).

pub mod watermark;

pub use watermark::{Mark, Watermark};
