//! What every connector shares, so that a connector is what it knows about its service and
//! nothing else: the service a connection belongs to and its check ([`service`]), logging
//! in and testing connections ([`connect`]), failures by kind ([`error`]), incremental
//! pulls ([`watermark`]), and connectors declared in files ([`manifest`], [`declared`]).

pub mod catalog;
pub mod connect;
pub mod declared;
pub mod destination;
pub mod error;
pub mod manifest;
pub mod service;
pub mod source;
pub mod target;
pub mod watermark;

pub use error::{ConnectorError, ErrorKind};
pub use service::Service;
pub use watermark::{Mark, Watermark};
