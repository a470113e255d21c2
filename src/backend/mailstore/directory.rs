//! MailStore's `cmd=list` user directory, read for the one thing `account=check` asks of it:
//! does this user name exist?
//!
//! The directory may be as large as its 16 MiB cap. Read into a generic JSON tree it cost
//! half a gigabyte per read; here the parser keeps only the user names, folded and packed
//! into one buffer with a sorted index (8 bytes per user beyond the name itself), and skips
//! every other field unread. One process reads a configuration's directory at most once per
//! `directory_ttl` (one thread reads, the others wait for its result), so a run of wrong
//! passwords does not become a run of 16 MiB downloads.
//!
//! The same rule as every answer (`jsobject`): an entry with `userName` twice, or with a key
//! twice, is no directory at all.

use crate::options::Options;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The user names of one directory, compared as MailStore compares them: ignoring the case
/// of ASCII letters (the module's one case rule, `options::fold_case`).
#[derive(Debug, Default)]
pub struct Directory {
    /// Every folded name, one after the other.
    names: String,
    /// (start, length) of each name in `names`, sorted by name.
    index: Vec<(u32, u32)>,
}

impl Directory {
    /// The directory in a `cmd=list` answer: a JSON array of objects, each with a string
    /// `userName`. `None` for anything else.
    pub fn parse(body: &[u8]) -> Option<Directory> {
        let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
        let mut directory = serde_json::from_slice::<Directory>(body).ok()?;
        let Directory { names, index } = &mut directory;
        index.sort_unstable_by(|a, b| name_at(names, *a).cmp(name_at(names, *b)));
        names.shrink_to_fit();
        index.shrink_to_fit();
        Some(directory)
    }

    pub fn contains(&self, user: &str) -> bool {
        let wanted = crate::options::fold_case(user);
        self.index
            .binary_search_by(|span| name_at(&self.names, *span).cmp(wanted.as_str()))
            .is_ok()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn push(&mut self, name: &str) -> Result<(), &'static str> {
        let start = u32::try_from(self.names.len()).map_err(|_| "directory too large")?;
        let length = u32::try_from(name.len()).map_err(|_| "directory too large")?;
        self.names.push_str(&crate::options::fold_case(name));
        self.index.push((start, length));
        Ok(())
    }
}

fn name_at(names: &str, (start, length): (u32, u32)) -> &str {
    names
        .get(start as usize..start as usize + length as usize)
        .unwrap_or("")
}

impl<'de> serde::Deserialize<'de> for Directory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(Users)
    }
}

/// The array: each element is read straight into the directory, none is kept whole.
struct Users;

impl<'de> Visitor<'de> for Users {
    type Value = Directory;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of users")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Directory, A::Error> {
        let mut directory = Directory::default();
        // Reused for every entry: the keys seen so far in it.
        let mut keys: Vec<String> = Vec::new();
        while seq
            .next_element_seed(User {
                directory: &mut directory,
                keys: &mut keys,
            })?
            .is_some()
        {}
        Ok(directory)
    }
}

/// One element: its `userName` is added, everything else is skipped unread.
struct User<'a> {
    directory: &'a mut Directory,
    keys: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for User<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for User<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a user object with a userName")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        self.keys.clear();
        let mut named = false;
        while let Some(key) = map.next_key::<String>()? {
            if self.keys.contains(&key) {
                return Err(de::Error::custom("a key given twice in one entry"));
            }
            if key == "userName" {
                let name = map.next_value::<String>()?;
                self.directory.push(&name).map_err(de::Error::custom)?;
                named = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            self.keys.push(key);
        }
        if named {
            Ok(())
        } else {
            Err(de::Error::custom("an entry without userName"))
        }
    }
}

/// What decides a directory's contents: configurations that agree here share one copy.
type Key = [u8; 32];

fn key_of(opts: &Options) -> Key {
    let mut digest = Sha256::new();
    let mut part = |bytes: &[u8]| {
        digest.update((bytes.len() as u64).to_be_bytes());
        digest.update(bytes);
    };
    for url in &opts.urls {
        part(url.as_bytes());
    }
    part(opts.http_user.as_deref().unwrap_or("").as_bytes());
    part(
        opts.http_password
            .as_ref()
            .map(|p| p.expose().as_bytes())
            .unwrap_or(b""),
    );
    part(
        opts.cafile
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
            .as_bytes(),
    );
    digest.finalize().into()
}

/// One configuration's copy: when it was read, and what.
type Slot = Arc<Mutex<Option<(Instant, Arc<Directory>)>>>;

/// More distinct configurations than any host has module lines.
const MAX_CONFIGURATIONS: usize = 64;

static SLOTS: once_cell::sync::Lazy<Mutex<HashMap<Key, Slot>>> =
    once_cell::sync::Lazy::new(|| Mutex::new(HashMap::new()));

/// This configuration's directory: the copy read within `directory_ttl`, else `read()` it
/// (and keep it). While one thread reads, the others of the process wait for its result,
/// at most `timeout=` (a read of one URL takes no longer), and then give up.
pub fn shared(
    opts: &Options,
    read: impl FnOnce() -> Result<Directory, String>,
) -> Result<Arc<Directory>, String> {
    let fresh = |read_at: Instant| read_at.elapsed() < opts.directory_ttl;
    let slot = {
        let Some(mut slots) = crate::lock::lock_briefly(&SLOTS) else {
            // Held across a fork() by a thread that is gone: read without sharing.
            return read().map(Arc::new);
        };
        let key = key_of(opts);
        if slots.len() >= MAX_CONFIGURATIONS && !slots.contains_key(&key) {
            slots.clear();
        }
        slots.entry(key).or_default().clone()
    };
    // Bounded: a lock held across fork() by a thread that is gone would hang the login.
    let Some(mut held) = crate::lock::lock_until(&slot, Instant::now() + opts.timeout) else {
        return Err(format!(
            "another login of this process is still reading the directory (over {:?})",
            opts.timeout
        ));
    };
    if let Some((read_at, directory)) = held.as_ref() {
        if fresh(*read_at) {
            return Ok(directory.clone());
        }
    }
    // The old copy goes before the new one is read: never two in memory at once.
    *held = None;
    let directory = Arc::new(read()?);
    if !opts.directory_ttl.is_zero() {
        *held = Some((Instant::now(), directory.clone()));
    }
    Ok(directory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compared_ignoring_ascii_case_only() {
        let body = br#"[{"userName":"john.doe","emailAddresses":["j@x"],"fullName":"J"},
                        {"userName":"Jane.Doe","distinguishedName":null},
                        {"userName":"\u00dcLLA"}]"#;
        let Some(dir) = Directory::parse(body) else {
            panic!("a directory")
        };
        assert_eq!(dir.len(), 3);
        assert!(dir.contains("jane.doe"));
        assert!(dir.contains("JOHN.DOE"));
        assert!(dir.contains("\u{dc}lla"));
        assert!(!dir.contains("\u{fc}lla"), "non-ASCII case is not folded");
        assert!(!dir.contains("nobody"));
        assert!(!dir.contains("john.do"));
        assert!(!dir.contains("john.doe "));
    }

    #[test]
    fn only_an_array_of_named_users_is_a_directory() {
        assert!(Directory::parse(b"[]").is_some_and(|d| d.is_empty()));
        assert!(Directory::parse("\u{feff}[]".as_bytes()).is_some());
        for bad in [
            &b""[..],
            b"{}",
            br#"[{"fullName":"x"}]"#,
            br#"[{"userName":5}]"#,
            br#"[{"userName":"a"},"b"]"#,
            br#"[{"userName":"a","userName":"b"}]"#,
            br#"[{"userName":"a","fullName":"x","fullName":"y"}]"#,
            br#"[{"userName":"a"}] trailing"#,
            br#"[{userName:"a"}]"#,
        ] {
            assert!(
                Directory::parse(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
