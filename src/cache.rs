//! The in-process cache of successful password checks (`cache_ttl=`, `cache_size=`,
//! `cache_fallback=`).
//!
//! A host process (a saslauthd worker, an httpd child) asks the same few users over and over.
//! A successful check is remembered for `cache_ttl` seconds under (configuration, service,
//! mapped user), holding only an HMAC-SHA-256 of the password under a key drawn at random once
//! per process: never the password, and nothing that outlives the process or means anything
//! outside it. A failed check is never stored and removes what was stored for that user; a
//! different password never matches. With `cache_fallback=`, a password verified within that
//! many seconds is accepted while the backend is unavailable (and that is logged as a warning).
//!
//! Time is a parameter (`now`), so expiry is tested without sleeping.

use crate::backend::Answer;
use crate::lock::lock_briefly;
use crate::options::Options;
use crate::pam::{Host, Level};
use crate::secret::Secret;
use crate::verdict::Verdict;
use once_cell::sync::Lazy;
use sha2::{Digest, Sha256};
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

type Mac = [u8; 32];

/// Who a cached check was for, within one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Who {
    service: String,
    user: String,
}

/// A `Who`, owned or borrowed: the map is searched with borrowed names, so a lookup (every
/// cache hit) builds no strings. Both forms hash and compare as the pair of names, as
/// `Borrow` requires.
trait Names {
    fn names(&self) -> (&str, &str);
}

impl Names for Who {
    fn names(&self) -> (&str, &str) {
        (&self.service, &self.user)
    }
}

impl Names for (&str, &str) {
    fn names(&self) -> (&str, &str) {
        *self
    }
}

impl<'a> Borrow<dyn Names + 'a> for Who {
    fn borrow(&self) -> &(dyn Names + 'a) {
        self
    }
}

impl Hash for Who {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.names().hash(state)
    }
}

impl Hash for dyn Names + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.names().hash(state)
    }
}

impl PartialEq for dyn Names + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.names() == other.names()
    }
}

impl Eq for dyn Names + '_ {}

struct Entry {
    mac: Mac,
    verified: Instant,
}

/// The successful checks of one configuration: bounded, oldest evicted first.
pub struct Cache {
    entries: HashMap<Who, Entry>,
    /// Insertion order, oldest first; a slot whose time no longer matches its entry is stale.
    order: VecDeque<(Who, Instant)>,
    capacity: usize,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How long ago this exact password was verified for this user, if within `max_age`.
    pub fn lookup(
        &self,
        service: &str,
        user: &str,
        mac: &Mac,
        now: Instant,
        max_age: Duration,
    ) -> Option<Duration> {
        if max_age.is_zero() {
            return None;
        }
        let entry = self.entries.get(&(service, user) as &dyn Names)?;
        let age = now.checked_duration_since(entry.verified)?;
        if age >= max_age {
            return None;
        }
        same_mac(&entry.mac, mac).then_some(age)
    }

    /// Remembers a successful check; drops entries older than `keep`, then the oldest ones
    /// while the cache is full.
    pub fn insert(&mut self, service: &str, user: &str, mac: Mac, now: Instant, keep: Duration) {
        let who = Who {
            service: service.to_string(),
            user: user.to_string(),
        };
        self.expire(now, keep);
        if !self.entries.contains_key(&who) {
            while self.entries.len() >= self.capacity {
                if !self.evict_oldest() {
                    break;
                }
            }
        }
        self.entries
            .insert(who.clone(), Entry { mac, verified: now });
        self.order.push_back((who, now));
        if self.order.len() > 2 * self.entries.len() + 64 {
            self.compact();
        }
    }

    /// Forgets a user (after a failed check: a changed password stops working at once).
    pub fn remove(&mut self, service: &str, user: &str) {
        self.entries.remove(&(service, user) as &dyn Names);
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.entries.len() > self.capacity {
            if !self.evict_oldest() {
                break;
            }
        }
    }

    /// Removes entries verified `keep` or longer ago.
    fn expire(&mut self, now: Instant, keep: Duration) {
        while let Some((who, at)) = self.order.pop_front() {
            let live = self.entries.get(&who).is_some_and(|e| e.verified == at);
            if live && now.saturating_duration_since(at) < keep {
                self.order.push_front((who, at));
                break;
            }
            if live {
                self.entries.remove(&who);
            }
        }
    }

    /// Removes the oldest live entry; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((who, at)) = self.order.pop_front() {
            if self.entries.get(&who).is_some_and(|e| e.verified == at) {
                self.entries.remove(&who);
                return true;
            }
        }
        // Only reachable if `order` lost track of an entry; start over rather than grow.
        let had = !self.entries.is_empty();
        self.entries.clear();
        had
    }

    /// Drops stale slots from the order queue (users re-verified many times).
    fn compact(&mut self) {
        let entries = &self.entries;
        self.order
            .retain(|(who, at)| entries.get(who).is_some_and(|e| e.verified == *at));
    }
}

/// Whether two MACs are equal, in time that does not depend on where they differ (compared
/// as four words: one constant-time step each, not one per byte).
fn same_mac(a: &Mac, b: &Mac) -> bool {
    let words = |mac: &Mac| -> [u64; 4] {
        let mut words = [0u64; 4];
        for (word, bytes) in words.iter_mut().zip(mac.chunks_exact(8)) {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(bytes);
            *word = u64::from_ne_bytes(eight);
        }
        words
    };
    words(a)[..].ct_eq(&words(b)[..]).into()
}

/// Where an authentication's answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Backend,
    /// A cache hit: verified this long ago.
    Cache(Duration),
    /// The backend was unavailable; answered from a check this long ago.
    Fallback(Duration),
}

/// One random key per process: the MACs mean nothing outside it.
static KEY: Lazy<Option<MacKey>> = Lazy::new(|| random_key().map(|key| MacKey::new(&key)));

/// More distinct configurations than any host has module lines.
const MAX_CONFIGURATIONS: usize = 64;

/// Each configuration's cache, by configuration digest.
static CACHES: Lazy<Mutex<HashMap<Mac, Cache>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// Checks a password: from the cache if allowed and present, else by `ask`ing the backend,
/// updating the cache from what it says. Logs hits (debug) and fallback answers (warning).
pub fn check(
    host: &dyn Host,
    opts: &Options,
    user: &str,
    password: &Secret,
    now: Instant,
    ask: impl FnOnce() -> Answer,
) -> Answer {
    if opts.cache_ttl.is_zero() && opts.cache_fallback.is_zero() {
        return ask();
    }
    let Some(key) = KEY.as_ref() else {
        if opts.debug {
            host.log(
                Level::Debug,
                "cache: no random key could be drawn; cache disabled",
            );
        }
        return ask();
    };
    let service = host.service();
    // Worked out once per parsed line (options::Derived): the key is the process's.
    let config = *opts
        .derived
        .cache_digest
        .get_or_init(|| config_digest(key, opts));
    let mac = password_mac(key, &config, &service, user, password);
    let (answer, source) = decide(opts, &config, &service, user, &mac, now, ask);
    match &source {
        Source::Backend => {}
        Source::Cache(age) => {
            if opts.debug {
                host.log(
                    Level::Debug,
                    &format!(
                        "cache: hit for user '{user}' (verified {}s ago, cache_ttl={}s)",
                        age.as_secs(),
                        opts.cache_ttl.as_secs()
                    ),
                );
            }
        }
        Source::Fallback(age) => host.log(
            Level::Warning,
            &format!(
                "cache: backend unavailable; accepted user '{user}' from a check {}s ago \
                 (cache_fallback={}s)",
                age.as_secs(),
                opts.cache_fallback.as_secs()
            ),
        ),
    }
    answer
}

/// The cache decision, free of logging and of the PAM handle.
pub fn decide(
    opts: &Options,
    config: &Mac,
    service: &str,
    user: &str,
    mac: &Mac,
    now: Instant,
    ask: impl FnOnce() -> Answer,
) -> (Answer, Source) {
    let hit = with_cache(opts, config, |c| {
        c.lookup(service, user, mac, now, opts.cache_ttl)
    })
    .flatten();
    if let Some(age) = hit {
        let answer = Answer {
            verdict: Verdict::Accepted,
            endpoint: Some("cache".into()),
        };
        return (answer, Source::Cache(age));
    }
    let answer = ask();
    let keep = opts.cache_ttl.max(opts.cache_fallback);
    match &answer.verdict {
        Verdict::Accepted => {
            with_cache(opts, config, |c| c.insert(service, user, *mac, now, keep));
        }
        // With the throttle on, a wrong password leaves the user's cached success alone: a
        // spray would otherwise take the real user's cache away and lock them out with it
        // (the cost: a password changed in the mail system works from the cache until
        // cache_ttl ends, as it does anyway when no wrong password comes in between).
        Verdict::Refused | Verdict::WrongPassword if opts.throttle.deny > 0 => {}
        Verdict::Refused
        | Verdict::WrongPassword
        | Verdict::UnknownUser
        | Verdict::Disabled(_)
        | Verdict::PasswordExpired => {
            with_cache(opts, config, |c| c.remove(service, user));
        }
        Verdict::Unavailable(why) => {
            let old = with_cache(opts, config, |c| {
                c.lookup(service, user, mac, now, opts.cache_fallback)
            })
            .flatten();
            if let Some(age) = old {
                let endpoint = match &answer.endpoint {
                    Some(e) => format!("cache_fallback (backend: {e}: {why})"),
                    None => format!("cache_fallback (backend: {why})"),
                };
                let answer = Answer {
                    verdict: Verdict::Accepted,
                    endpoint: Some(endpoint),
                };
                return (answer, Source::Fallback(age));
            }
        }
        Verdict::Misconfigured(_) | Verdict::Throttled(_) => {}
    }
    (answer, Source::Backend)
}

/// Runs `f` on this configuration's cache. Never blocks for long: a lock that stays taken
/// (held by a thread that did not survive a fork()) makes this a cache miss, not a hang.
fn with_cache<R>(opts: &Options, config: &Mac, f: impl FnOnce(&mut Cache) -> R) -> Option<R> {
    let mut caches = lock_briefly(&CACHES)?;
    if caches.len() >= MAX_CONFIGURATIONS && !caches.contains_key(config) {
        // Configurations come from /etc/pam.d and config files: this many means a long-lived
        // process saw its config file edited again and again. Start over.
        caches.clear();
    }
    let cache = caches
        .entry(*config)
        .or_insert_with(|| Cache::new(opts.cache_size));
    if cache.capacity != opts.cache_size.max(1) {
        cache.set_capacity(opts.cache_size);
    }
    Some(f(cache))
}

/// An HMAC-SHA-256 key (RFC 2104), kept as the two hash states every MAC under it starts
/// from: the key XOR ipad and the key XOR opad, each one block, hashed once per process
/// instead of once per check.
#[derive(Clone)]
pub struct MacKey {
    inner: Sha256,
    outer: Sha256,
}

impl MacKey {
    pub fn new(key: &[u8; 32]) -> MacKey {
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, k) in key.iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let mut inner = Sha256::new();
        inner.update(ipad);
        let mut outer = Sha256::new();
        outer.update(opad);
        MacKey { inner, outer }
    }
}

/// HMAC-SHA-256 of length-prefixed parts.
fn hmac(key: &MacKey, parts: &[&[u8]]) -> Mac {
    let mut inner = key.inner.clone();
    for part in parts {
        inner.update((part.len() as u64).to_be_bytes());
        inner.update(part);
    }
    let mut outer = key.outer.clone();
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The password's MAC, bound to configuration, service and user.
fn password_mac(key: &MacKey, config: &Mac, service: &str, user: &str, password: &Secret) -> Mac {
    hmac(
        key,
        &[
            b"password",
            config,
            service.as_bytes(),
            user.as_bytes(),
            password.expose().as_bytes(),
        ],
    )
}

/// A digest of every option that decides the backend's answer: two module lines share
/// cached checks only if they would ask the same store the same question.
pub fn config_digest(key: &MacKey, opts: &Options) -> Mac {
    // Every field is named here, so a new option cannot be added without deciding whether
    // it changes the answer (and so belongs in the digest) or not.
    let Options {
        backend,
        urls,
        config: _,
        timeout: _,
        connect_timeout: _,
        offline_interval: _,
        cafile,
        password_source: _,
        mapping,
        leniency: _,
        cache_ttl: _,
        cache_size: _,
        cache_fallback: _,
        fail_delay_ms: _,
        throttle: _,
        debug: _,
        quiet: _,
        http_user,
        http_password,
        token,
        set_pam_user: _,
        account_check,
        directory_ttl: _,
        api,
        method,
        dsn,
        file,
        socket,
        features,
        disabled_features,
        weak_schemes,
        query,
        // Only decides whether a line may run at all (otherwise a configuration error).
        disable_tls_never_use_in_production: _,
        #[cfg(feature = "fault-injection")]
            inject_panic: _,
        derived: _,
    } = opts;
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let secret = |s: &Option<Secret>| {
        zeroize::Zeroizing::new(
            s.as_ref()
                .map_or("\u{0}none".to_string(), |s| s.expose().to_string()),
        )
    };
    let fields: Vec<String> = vec![
        backend.name().to_string(),
        urls.join("\n"),
        path(cafile),
        format!("{mapping:?}"),
        http_user.clone().unwrap_or_default(),
        format!("{api:?}"),
        format!("{method:?}"),
        path(file),
        path(socket),
        features.join("|"),
        disabled_features.join("|"),
        format!("{account_check}"),
        format!("{weak_schemes:?}"),
        query.clone().unwrap_or_default(),
    ];
    let secrets = [secret(http_password), secret(token), secret(dsn)];
    let mut parts: Vec<&[u8]> = vec![b"config"];
    parts.extend(fields.iter().map(|f| f.as_bytes()));
    parts.extend(secrets.iter().map(|s| s.as_bytes()));
    hmac(key, &parts)
}

fn random_key() -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    let mut filled = 0;
    while filled < key.len() {
        // SAFETY: writes at most the remaining bytes of `key`.
        let n = unsafe {
            libc::getrandom(
                key[filled..].as_mut_ptr() as *mut libc::c_void,
                key.len() - filled,
                0,
            )
        };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    if filled == key.len() {
        return Some(key);
    }
    use std::io::Read;
    let mut file = std::fs::File::open("/dev/urandom").ok()?;
    file.read_exact(&mut key).ok()?;
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn mac(b: u8) -> Mac {
        [b; 32]
    }

    #[test]
    fn hit_only_with_the_same_password_within_the_ttl() {
        let t0 = Instant::now();
        let mut c = Cache::new(10);
        c.insert("smtp", "john", mac(1), t0, 60 * S);
        assert_eq!(c.lookup("smtp", "john", &mac(1), t0 + S, 60 * S), Some(S));
        assert_eq!(c.lookup("smtp", "john", &mac(2), t0 + S, 60 * S), None);
        assert_eq!(c.lookup("imap", "john", &mac(1), t0 + S, 60 * S), None);
        assert_eq!(c.lookup("smtp", "jane", &mac(1), t0 + S, 60 * S), None);
        assert_eq!(c.lookup("smtp", "john", &mac(1), t0 + 60 * S, 60 * S), None);
        assert_eq!(
            c.lookup("smtp", "john", &mac(1), t0 + S, Duration::ZERO),
            None
        );
    }

    #[test]
    fn bounded_and_oldest_first() {
        let t0 = Instant::now();
        let mut c = Cache::new(3);
        for (i, u) in ["a", "b", "c", "d"].iter().enumerate() {
            c.insert("s", u, mac(1), t0 + S * i as u32, 60 * S);
        }
        assert_eq!(c.len(), 3);
        let now = t0 + 5 * S;
        assert_eq!(c.lookup("s", "a", &mac(1), now, 60 * S), None);
        for u in ["b", "c", "d"] {
            assert!(c.lookup("s", u, &mac(1), now, 60 * S).is_some(), "{u}");
        }
        // Re-verifying b makes c the oldest.
        c.insert("s", "b", mac(1), t0 + 6 * S, 60 * S);
        c.insert("s", "e", mac(1), t0 + 7 * S, 60 * S);
        assert_eq!(c.len(), 3);
        assert_eq!(c.lookup("s", "c", &mac(1), t0 + 8 * S, 60 * S), None);
        assert!(c.lookup("s", "b", &mac(1), t0 + 8 * S, 60 * S).is_some());
    }

    #[test]
    fn expired_entries_go_first() {
        let t0 = Instant::now();
        let mut c = Cache::new(100);
        c.insert("s", "a", mac(1), t0, 10 * S);
        c.insert("s", "b", mac(1), t0 + 5 * S, 10 * S);
        c.insert("s", "c", mac(1), t0 + 12 * S, 10 * S);
        assert_eq!(c.len(), 2, "a expired and was dropped");
    }

    #[test]
    fn repeated_reverification_does_not_grow_without_bound() {
        let t0 = Instant::now();
        let mut c = Cache::new(2);
        for i in 0..10_000u32 {
            c.insert(
                "s",
                "a",
                mac(1),
                t0 + Duration::from_millis(i as u64),
                3600 * S,
            );
        }
        assert_eq!(c.len(), 1);
        assert!(c.order.len() <= 2 * c.len() + 65);
    }

    #[test]
    fn removal_forgets() {
        let t0 = Instant::now();
        let mut c = Cache::new(10);
        c.insert("s", "a", mac(1), t0, 60 * S);
        c.remove("s", "a");
        assert_eq!(c.lookup("s", "a", &mac(1), t0, 60 * S), None);
        assert!(c.is_empty());
    }

    #[test]
    fn macs_depend_on_every_input_and_on_the_key() {
        let k1 = MacKey::new(&[7u8; 32]);
        let k2 = MacKey::new(&[8u8; 32]);
        let cfg = [0u8; 32];
        let p = Secret::new("Passw0rd");
        let base = password_mac(&k1, &cfg, "smtp", "john", &p);
        assert_ne!(base, password_mac(&k2, &cfg, "smtp", "john", &p));
        assert_ne!(
            base,
            password_mac(&k1, &cfg, "smtp", "john", &Secret::new("passw0rd"))
        );
        assert_ne!(base, password_mac(&k1, &cfg, "smtpj", "ohn", &p));
        assert_ne!(base, password_mac(&k1, &[1u8; 32], "smtp", "john", &p));
        // Never the password itself.
        assert!(!base.windows(8).any(|w| w == b"Passw0rd"));
    }

    #[test]
    fn the_mac_is_hmac_sha256_of_the_length_prefixed_parts() {
        // Python: hmac.new(bytes(range(32)), (1).to_bytes(8, "big") + b"x" + bytes(8),
        // hashlib.sha256).hexdigest()
        // (A key of distinct bytes: a key byte in the wrong place changes the MAC.)
        let expected = "ef3935ace72d8ad9982ec98f4f969d931e6e253b89a201aa5bb06542ab12c69f";
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let mac = hmac(&MacKey::new(&key), &[b"x", b""]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn length_prefixes_keep_parts_apart() {
        let k = MacKey::new(&[1u8; 32]);
        assert_eq!(hmac(&k, &[b"x"]), hmac(&k, &[b"x"]));
        assert_ne!(hmac(&k, &[b"x", b""]), hmac(&k, &[b"x"]));
    }

    #[test]
    fn config_digest_follows_the_answer_deciding_options() {
        let k = MacKey::new(&[3u8; 32]);
        let parse = |args: &[&str]| match Options::parse(args) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        };
        let a = parse(&["backend=mailstore", "url=http://127.0.0.1/a"]);
        let b = parse(&["backend=mailstore", "url=http://127.0.0.1/b"]);
        let a_quiet = parse(&["backend=mailstore", "url=http://127.0.0.1/a", "quiet"]);
        let sock1 = parse(&["backend=kopano", "socket=/run/one.sock"]);
        let sock2 = parse(&["backend=kopano", "socket=/run/two.sock"]);
        assert_ne!(config_digest(&k, &sock1), config_digest(&k, &sock2));
        assert_ne!(config_digest(&k, &a), config_digest(&k, &b));
        assert_eq!(config_digest(&k, &a), config_digest(&k, &a_quiet));
    }

    #[test]
    fn random_keys_differ() {
        let (Some(one), Some(two)) = (random_key(), random_key()) else {
            panic!("no random key")
        };
        assert_ne!(one, two);
    }
}
