//! backend=kopano: not implemented yet (see the open issue for it).

use super::{Answer, Backend};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;

pub struct Kopano<'a> {
    #[allow(dead_code)]
    opts: &'a Options,
}

impl<'a> Kopano<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Kopano { opts }
    }
}

impl Backend for Kopano<'_> {
    fn verify(&self, _user: &str, _password: &Secret) -> Answer {
        Verdict::Misconfigured("backend=kopano is not implemented in this version".into()).into()
    }
}
