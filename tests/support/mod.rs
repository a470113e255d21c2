//! Shared test support: the libpam harness and local servers written from the protocol
//! documents.
#![allow(dead_code)]

pub mod http;
pub mod mailstore;
pub mod pam;
pub mod syslog;
pub mod tls;

pub use self::pam::*;
