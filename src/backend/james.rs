//! backend=james: not implemented yet (see the open issue for it).

use super::{Answer, Backend};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;

pub struct James<'a> {
    #[allow(dead_code)]
    opts: &'a Options,
}

impl<'a> James<'a> {
    pub fn new(opts: &'a Options) -> Self {
        James { opts }
    }
}

impl Backend for James<'_> {
    fn verify(&self, _user: &str, _password: &Secret) -> Answer {
        Verdict::Misconfigured("backend=james is not implemented in this version".into()).into()
    }
}
