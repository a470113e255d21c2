//! backend=axigen: not implemented yet (see the open issue for it).

use super::{Answer, Backend};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;

pub struct Axigen<'a> {
    #[allow(dead_code)]
    opts: &'a Options,
}

impl<'a> Axigen<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Axigen { opts }
    }
}

impl Backend for Axigen<'_> {
    fn verify(&self, _user: &str, _password: &Secret) -> Answer {
        Verdict::Misconfigured("backend=axigen is not implemented in this version".into()).into()
    }
}
