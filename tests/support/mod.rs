//! Shared test support: the libpam harness and local servers written from the protocol
//! documents.
#![allow(dead_code)]

pub mod apache;
pub mod axigen;
pub mod confdir;
pub mod dovecot;
pub mod examples;
pub mod http;
pub mod james;
pub mod kopano_soap;
pub mod mailstore;
pub mod mariadb;
pub mod netns;
pub mod pam;
pub mod pfa_generators;
pub mod postfix;
pub mod postfixadmin;
pub mod postgres;
pub mod process;
pub mod saslauthd;
pub mod scim;
pub mod syslog;
pub mod tls;

#[allow(unused_imports)]
pub use self::pam::*;
