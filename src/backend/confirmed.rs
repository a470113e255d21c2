//! Bases confirmed to be the service they are configured as, kept per process and
//! configuration.
//!
//! A 404 for one user means "unknown user" only from a base known to be the service: the same
//! 404 comes from a wrong `url=` (another server, another path), and taken as "unknown" it
//! would make everyone unknown, which an `account [user_unknown=ignore]` line waves through.
//! Backends that read a 404 so (SCIM, James) confirm the base once with a request only the
//! real service answers with 200, and record it here.

use once_cell::sync::Lazy;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Mutex;

/// Confirmations kept at most; a host has a handful of configurations.
const CONFIRMED_MAX: usize = 256;

/// A confirmation: (process id, digest of service, base URL and credentials). The pid makes a
/// forked child confirm for itself; the credentials are in the digest because the probe's 200
/// depends on them; the service keeps a SCIM confirmation from vouching for James.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Confirmation(u32, [u8; 32]);

/// Every base confirmed so far.
static CONFIRMED: Lazy<Mutex<HashSet<Confirmation>>> = Lazy::new(|| Mutex::new(HashSet::new()));

impl Confirmation {
    /// The confirmation of `base` as `service`, asked with these credentials.
    pub fn of(service: &str, base: &str, credentials: &[Option<&str>]) -> Confirmation {
        let mut h = Sha256::new();
        h.update(service.as_bytes());
        h.update([0]);
        h.update(base.as_bytes());
        for part in credentials {
            h.update([0]);
            h.update(part.unwrap_or("").as_bytes());
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&h.finalize());
        Confirmation(crate::fork::pid(), digest)
    }

    pub fn is_known(&self) -> bool {
        // Without the lock (crate::lock) the base is simply confirmed again.
        crate::lock::lock_briefly(&CONFIRMED).is_some_and(|set| set.contains(self))
    }

    pub fn remember(self) {
        if let Some(mut set) = crate::lock::lock_briefly(&CONFIRMED) {
            if set.len() >= CONFIRMED_MAX {
                set.clear();
            }
            set.insert(self);
        }
    }
}
