//! backend=scim: not implemented yet (see the open issue for it).

use super::{Answer, Backend};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;

pub struct Scim<'a> {
    #[allow(dead_code)]
    opts: &'a Options,
}

impl<'a> Scim<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Scim { opts }
    }
}

impl Backend for Scim<'_> {
    fn verify(&self, _user: &str, _password: &Secret) -> Answer {
        Verdict::Misconfigured("backend=scim is not implemented in this version".into()).into()
    }
}
