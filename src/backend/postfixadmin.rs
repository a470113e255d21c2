//! backend=postfixadmin: PostfixAdmin's own `mailbox` and `domain` tables.

pub mod scheme;
