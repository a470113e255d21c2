//! Options: defaults, then the config file, then the module arguments, all through ONE setter
//! into one typed value (spec.md "Options"). Everything an admin can get wrong is reported
//! here, by key name, before any backend is contacted.

use crate::backend::postfixadmin::scheme::WeakSchemes;
use crate::lock::lock_briefly;
use crate::secret::Secret;
use crate::trusted_file::{self, Role, Trusted};
use crate::verdict::Leniency;
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Largest config file we read: a real one is a few hundred bytes; anything bigger is a mistake.
pub const CONFIG_MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Mailstore,
    Axigen,
    Kopano,
    James,
    Scim,
    Postfixadmin,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Mailstore => "mailstore",
            BackendKind::Axigen => "axigen",
            BackendKind::Kopano => "kopano",
            BackendKind::James => "james",
            BackendKind::Scim => "scim",
            BackendKind::Postfixadmin => "postfixadmin",
        }
    }
}

/// Where the password comes from (pam_unix's `use_first_pass` / `try_first_pass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasswordSource {
    /// Ask through the conversation, ignoring any token an earlier module obtained.
    #[default]
    Prompt,
    /// Reuse an earlier module's token if there is one, else ask.
    TryFirstPass,
    /// Reuse an earlier module's token; never ask.
    UseFirstPass,
}

/// User-name mapping applied before any backend sees the name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserMapping {
    pub lowercase: bool,
    pub strip_domain: bool,
    pub domain: Option<String>,
}

impl UserMapping {
    /// Order: strip the domain, then append the default domain, then lower-case, so that
    /// `strip_domain domain=example.com` moves every user into one domain.
    /// Borrowed when nothing changes (most lines map no names).
    pub fn apply<'a>(&self, user: &'a str) -> Cow<'a, str> {
        let mut name = Cow::Borrowed(user);
        if self.strip_domain {
            if let Some(at) = user.find('@') {
                name = Cow::Borrowed(&user[..at]);
            }
        }
        if let Some(domain) = &self.domain {
            if !name.contains('@') {
                name = Cow::Owned(format!("{name}@{domain}"));
            }
        }
        if self.lowercase && name.bytes().any(|b| b.is_ascii_uppercase()) {
            name = Cow::Owned(fold_case(&name));
        }
        name
    }
}

/// The module's one case rule (`lowercase`, MailStore's directory): ASCII letters A-Z become
/// a-z, nothing else changes. Unicode lower-casing would merge names that are distinct
/// mailboxes (the Kelvin sign K becomes k, and with it one user becomes another); folding
/// ASCII only merges names that differ in the case of A-Z alone.
pub fn fold_case(name: &str) -> String {
    name.to_ascii_lowercase()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AxigenApi {
    #[default]
    Webmail,
    Rest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginMethod {
    #[default]
    Post,
    Get,
}

/// The whole configuration of one module line.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: BackendKind,
    pub urls: Vec<String>,
    pub config: Option<PathBuf>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// How long a URL that timed out or refused the connection is skipped (`crate::offline`);
    /// zero turns offline marking off.
    pub offline_interval: Duration,
    pub cafile: Option<PathBuf>,
    pub password_source: PasswordSource,
    pub mapping: UserMapping,
    pub leniency: Leniency,
    pub cache_ttl: Duration,
    pub cache_size: usize,
    pub cache_fallback: Duration,
    pub fail_delay_ms: u64,
    /// `deny=`, `fail_interval=`, `unlock_time=`, `tally_dir=` (src/throttle.rs).
    pub throttle: crate::throttle::Policy,
    pub debug: bool,
    pub quiet: bool,
    // Credentials of the backend endpoint itself: secrets, config file only.
    pub http_user: Option<String>,
    pub http_password: Option<Secret>,
    pub token: Option<Secret>,
    /// After a success, set PAM_USER to the mapped name the backend checked.
    pub set_pam_user: bool,
    // mailstore
    pub account_check: bool,
    /// How long one process reuses the `cmd=list` directory it read (0: read every time).
    pub directory_ttl: Duration,
    // axigen
    pub api: AxigenApi,
    pub method: LoginMethod,
    // kopano
    pub dsn: Option<Secret>,
    pub file: Option<PathBuf>,
    /// kopano-server's unix socket for the SOAP logon (pam_mapi's `socket=`).
    pub socket: Option<PathBuf>,
    pub features: Vec<String>,
    pub disabled_features: Vec<String>,
    // postfixadmin
    /// Whether plaintext and unsalted digests are checked (`weak_schemes=`).
    pub weak_schemes: WeakSchemes,
    /// The admin's own lookup (`query=`): one SELECT, the login name its only parameter.
    pub query: Option<String>,
    /// Allows plaintext (http://, a DSN without TLS) to hosts other than loopback
    /// (`crate::offhost`).
    pub disable_tls_never_use_in_production: bool,
    #[cfg(feature = "fault-injection")]
    pub inject_panic: bool,
    /// What later steps work out from these options, kept with them.
    pub derived: Derived,
}

/// Values other modules work out from a line's options on first use and keep with them: a
/// parsed line is shared by every login of the process ([`Options::shared`]). A clone starts
/// empty, so a copy that is then changed never carries values of the original.
#[derive(Default)]
pub struct Derived {
    /// `crate::cache::config_digest`.
    pub cache_digest: OnceLock<[u8; 32]>,
    /// `urls`, parsed (`crate::http::failover`).
    pub endpoints: OnceLock<Vec<crate::http::Endpoint>>,
}

impl Clone for Derived {
    fn clone(&self) -> Self {
        Derived::default()
    }
}

impl fmt::Debug for Derived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Derived")
    }
}

/// A configuration error, worded for the admin who must fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a setting came from; secrets may only come from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    File,
    Argument,
}

struct Builder {
    backend: Option<BackendKind>,
    url_from: Option<Origin>,
    /// The key that set the required features: `feature`, or pam_mapi's `service`.
    feature_key: &'static str,
    /// pam_mapi's `socket=` was given: a copied pam_mapi line needs no `backend=`.
    pam_mapi_socket: bool,
    opts: Options,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backend: BackendKind::Mailstore,
            urls: Vec::new(),
            config: None,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            offline_interval: Duration::from_secs(30),
            cafile: None,
            password_source: PasswordSource::Prompt,
            mapping: UserMapping::default(),
            leniency: Leniency::default(),
            cache_ttl: Duration::ZERO,
            cache_size: 1024,
            cache_fallback: Duration::ZERO,
            fail_delay_ms: 0,
            throttle: crate::throttle::Policy::default(),
            debug: false,
            quiet: false,
            http_user: None,
            http_password: None,
            token: None,
            set_pam_user: false,
            account_check: false,
            directory_ttl: Duration::from_secs(60),
            api: AxigenApi::Webmail,
            method: LoginMethod::Post,
            dsn: None,
            file: None,
            socket: None,
            features: Vec::new(),
            disabled_features: vec!["imap".into(), "pop3".into()],
            weak_schemes: WeakSchemes::Refuse,
            query: None,
            disable_tls_never_use_in_production: false,
            #[cfg(feature = "fault-injection")]
            inject_panic: false,
            derived: Derived::default(),
        }
    }
}

/// A module line this process parsed: its arguments, its options, and the config file text
/// they came from.
struct Parsed {
    args: Vec<String>,
    file: Option<Trusted>,
    options: Arc<Options>,
}

/// More distinct module lines than any host has.
const MAX_LINES: usize = 64;

/// The lines parsed in this process ([`Options::shared`]): a few, found by comparing their
/// arguments (cheaper than hashing them).
static PARSED: Mutex<Vec<Parsed>> = Mutex::new(Vec::new());

impl Options {
    /// Parses module arguments, reading the config file they name first.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Options, ConfigError> {
        match config_file(args)? {
            Some((path, file)) => {
                Self::parse_with(Some((&path, &file.text, file.other_readable)), args)
            }
            None => Self::parse_with(None, args),
        }
    }

    /// [`Options::parse`] for the hooks: a host runs the same module line on every login, and
    /// parsing it again (URLs, DSN, the config file's lines) would cost more than the rest of a
    /// cached check. So a line is parsed once per process and shared while its arguments and
    /// its config file's text stay the same. What the parser checks in the filesystem is
    /// checked on every call as before: the config file is read again once it changed
    /// (`trusted_file::reuse_or_read`), and so is the CA file (`trusted_file::check_cafile`).
    pub fn shared(args: &[&str]) -> Result<Arc<Options>, ConfigError> {
        let file = config_file(args)?;
        let same_file = |seen: &Option<Trusted>| match (seen, &file) {
            (None, None) => true,
            (Some(seen), Some((_, now))) => {
                seen.other_readable == now.other_readable && *seen.text == *now.text
            }
            _ => false,
        };
        let same_args = |line: &Parsed| {
            line.args
                .iter()
                .map(String::as_str)
                .eq(args.iter().copied())
        };
        let known = lock_briefly(&PARSED).and_then(|parsed| {
            let line = parsed.iter().find(|line| same_args(line))?;
            same_file(&line.file).then(|| line.options.clone())
        });
        if let Some(options) = known {
            if let Some(ca) = &options.cafile {
                trusted_file::check_cafile(ca).map_err(ConfigError)?;
            }
            return Ok(options);
        }
        let options = Arc::new(match &file {
            Some((path, text)) => {
                Self::parse_with(Some((path, &text.text, text.other_readable)), args)?
            }
            None => Self::parse_with(None, args)?,
        });
        if let Some(mut parsed) = lock_briefly(&PARSED) {
            parsed.retain(|line| !same_args(line));
            if parsed.len() >= MAX_LINES {
                parsed.clear();
            }
            parsed.push(Parsed {
                args: args.iter().map(|a| a.to_string()).collect(),
                file: file.map(|(_, text)| text),
                options: options.clone(),
            });
        }
        Ok(options)
    }

    /// The parser without the filesystem: `text` stands for the contents of a config file
    /// that passed every ownership and permission check. For fuzzing and tests.
    pub fn parse_config_text<S: AsRef<str>>(
        text: &str,
        args: &[S],
    ) -> Result<Options, ConfigError> {
        Self::parse_with(Some((Path::new("(config text)"), text, false)), args)
    }

    /// `file` is the config file's path, text, and whether "other" may read it.
    fn parse_with<S: AsRef<str>>(
        file: Option<(&Path, &str, bool)>,
        args: &[S],
    ) -> Result<Options, ConfigError> {
        let mut builder = Builder {
            backend: None,
            url_from: None,
            feature_key: "feature",
            pam_mapi_socket: false,
            opts: Options::default(),
        };
        if let Some((path, text, other_readable)) = file {
            let mut holds_secret = false;
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (key, value) = match line.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim())),
                    None => (line, None),
                };
                if !is_key(key) {
                    // Not echoed: a line like "http_password s3cret" holds the secret itself.
                    return Err(ConfigError(format!(
                        "{}: line {} is not a 'key = value' line (not shown: it may hold a secret)",
                        path.display(),
                        number + 1
                    )));
                }
                holds_secret |= is_secret(key, value.unwrap_or(""));
                builder.set(key, value, Origin::File).map_err(|e| {
                    ConfigError(format!("{}: line {}: {}", path.display(), number + 1, e.0))
                })?;
            }
            if holds_secret && other_readable {
                let shown = path.display();
                return Err(ConfigError(format!(
                    "config file {shown} holds a secret but is readable by everyone (chmod o-r {shown}; \
                     group-readable is fine, e.g. chgrp www-data {shown} for Apache)"
                )));
            }
            builder.opts.config = Some(path.to_path_buf());
        }
        for arg in args {
            let arg = arg.as_ref();
            if arg.starts_with("config=") {
                continue;
            }
            let (key, value) = match arg.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (arg, None),
            };
            builder.set(key, value, Origin::Argument)?;
        }
        builder.finish()
    }
}

/// The config file the arguments name (the last `config=`), read under `trusted_file`'s rules
/// (again only once it changed).
fn config_file<S: AsRef<str>>(args: &[S]) -> Result<Option<(PathBuf, Trusted)>, ConfigError> {
    let Some(path) = args
        .iter()
        .filter_map(|a| a.as_ref().strip_prefix("config="))
        .next_back()
        .map(PathBuf::from)
    else {
        return Ok(None);
    };
    let file = trusted_file::reuse_or_read(&path, read_config_file)?;
    Ok(Some((path, file)))
}

/// What an option name looks like; anything else on a config-file line is not echoed back.
fn is_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Keys whose values must never sit in world-readable /etc/pam.d.
fn is_secret(key: &str, value: &str) -> bool {
    match key {
        "http_password" | "token" => true,
        // Judged by the driver's own DSN parser (crate::sql).
        "dsn" => crate::sql::is_secret(value),
        _ => false,
    }
}

impl Builder {
    /// The one setter for file lines and module arguments alike.
    fn set(&mut self, key: &str, value: Option<&str>, origin: Origin) -> Result<(), ConfigError> {
        let o = &mut self.opts;
        if origin == Origin::Argument && is_secret(key, value.unwrap_or("")) {
            return Err(ConfigError(format!(
                "'{key}' is a secret and may only be set in the config file (config=), \
                 never as a module argument: /etc/pam.d is world-readable"
            )));
        }
        let need = |what: &str| -> Result<&str, ConfigError> {
            match value {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(ConfigError(format!("'{key}' needs a value: {key}={what}"))),
            }
        };
        match key {
            "backend" => {
                self.backend = Some(match need("mailstore|axigen|kopano|james|scim|postfixadmin")? {
                    "mailstore" => BackendKind::Mailstore,
                    "axigen" => BackendKind::Axigen,
                    "kopano" => BackendKind::Kopano,
                    "james" => BackendKind::James,
                    "scim" => BackendKind::Scim,
                    "postfixadmin" => BackendKind::Postfixadmin,
                    other => {
                        return Err(ConfigError(format!(
                            "backend '{other}' is not one of mailstore, axigen, kopano, james, scim, postfixadmin"
                        )))
                    }
                })
            }
            "url" => self.push_url(need("https://host/path")?, origin)?,
            "timeout" => o.timeout = seconds(key, need("SECONDS")?)?,
            "connect_timeout" => o.connect_timeout = seconds(key, need("SECONDS")?)?,
            "offline_interval" => {
                o.offline_interval = Duration::from_secs(number(key, need("SECONDS")?, 0, 3600)?)
            }
            "cafile" => o.cafile = Some(PathBuf::from(need("/path/to/ca.pem")?)),
            "use_first_pass" => {
                flag(key, value)?;
                o.password_source = PasswordSource::UseFirstPass
            }
            "try_first_pass" => {
                flag(key, value)?;
                if o.password_source != PasswordSource::UseFirstPass {
                    o.password_source = PasswordSource::TryFirstPass
                }
            }
            "lowercase" => o.mapping.lowercase = flag(key, value)?,
            "strip_domain" => o.mapping.strip_domain = flag(key, value)?,
            "domain" => {
                let d = need("example.com")?;
                if d.contains('@') || d.contains(char::is_whitespace) {
                    return Err(ConfigError(format!(
                        "domain '{d}' must be a bare domain name"
                    )));
                }
                o.mapping.domain = Some(d.to_string())
            }
            "set_pam_user" => o.set_pam_user = flag(key, value)?,
            "directory_ttl" => {
                o.directory_ttl = Duration::from_secs(number(key, need("SECONDS")?, 0, 86_400)?)
            }
            "ignore_unknown_user" => o.leniency.ignore_unknown_user = flag(key, value)?,
            "ignore_authinfo_unavail" => o.leniency.ignore_authinfo_unavail = flag(key, value)?,
            "cache_ttl" => {
                o.cache_ttl = Duration::from_secs(number(key, need("SECONDS")?, 0, 86_400)?)
            }
            "cache_size" => o.cache_size = number(key, need("ENTRIES")?, 1, 1_000_000)? as usize,
            "cache_fallback" => {
                o.cache_fallback =
                    Duration::from_secs(number(key, need("SECONDS")?, 0, 7 * 86_400)?)
            }
            "fail_delay" => o.fail_delay_ms = number(key, need("MILLISECONDS")?, 0, 60_000)?,
            "deny" => {
                o.throttle.deny =
                    number(key, need("FAILURES")?, 0, crate::throttle::MAX_DENY)? as u32
            }
            "fail_interval" => {
                o.throttle.fail_interval =
                    Duration::from_secs(number(key, need("SECONDS")?, 1, 86_400)?)
            }
            "unlock_time" => {
                o.throttle.unlock_time =
                    Duration::from_secs(number(key, need("SECONDS")?, 1, 86_400)?)
            }
            "tally_dir" => {
                let dir = need("/run/pam_mailauth/tally")?;
                if !dir.starts_with('/') {
                    return Err(ConfigError(format!(
                        "tally_dir '{dir}' must be an absolute path"
                    )));
                }
                o.throttle.dir = PathBuf::from(dir)
            }
            "debug" => o.debug = flag(key, value)?,
            "quiet" => o.quiet = flag(key, value)?,
            "http_user" => o.http_user = Some(need("NAME")?.to_string()),
            "http_password" => o.http_password = Some(Secret::new(need("PASSWORD")?)),
            "token" => o.token = Some(Secret::new(need("TOKEN")?)),
            "account" => {
                o.account_check = match need("check|none")? {
                    "check" => true,
                    "none" => false,
                    v => {
                        return Err(ConfigError(format!(
                            "account '{v}' is not one of check, none"
                        )))
                    }
                }
            }
            "api" => {
                o.api = match need("webmail|rest")? {
                    "webmail" => AxigenApi::Webmail,
                    "rest" => AxigenApi::Rest,
                    v => {
                        return Err(ConfigError(format!(
                            "api '{v}' is not one of webmail, rest"
                        )))
                    }
                }
            }
            "method" => {
                o.method = match need("post|get")? {
                    "post" => LoginMethod::Post,
                    "get" => LoginMethod::Get,
                    v => return Err(ConfigError(format!("method '{v}' is not one of post, get"))),
                }
            }
            "dsn" => {
                let dsn = need("mysql://user:password@host:port/database")?;
                crate::sql::Dsn::parse(dsn).map_err(ConfigError)?;
                o.dsn = Some(Secret::new(dsn))
            }
            "file" => o.file = Some(PathBuf::from(need("/path/to/hashes")?)),
            "socket" => {
                // pam_mapi's socket= took a URL: http://localhost:236/kopano (its default),
                // https://..., or file:///var/run/kopano/server.sock. A copied line must work:
                // http(s) URLs are url=, anything else the unix socket's path.
                let v = need("http://localhost:236/kopano")?;
                self.pam_mapi_socket = true;
                if v.starts_with("http://") || v.starts_with("https://") {
                    return self.push_url(v, origin);
                }
                let path = v.strip_prefix("file://").unwrap_or(v);
                if !path.starts_with('/') {
                    return Err(ConfigError(format!(
                        "socket '{v}' must be http://HOST:PORT/..., https://HOST:PORT/..., \
                         or the absolute path (or file:// URL) of kopano-server's unix socket"
                    )));
                }
                self.opts.socket = Some(PathBuf::from(path))
            }
            "feature" => {
                o.features = feature_list(key, need("imap|pop3")?)?;
                self.feature_key = "feature";
            }
            // pam_mapi's name for the same check.
            "service" => {
                o.features = feature_list(key, need("imap|pop3")?)?;
                self.feature_key = "service";
            }
            "weak_schemes" => {
                o.weak_schemes = match need("refuse|allow")? {
                    "refuse" => WeakSchemes::Refuse,
                    "allow" => WeakSchemes::Allow,
                    v => {
                        return Err(ConfigError(format!(
                            "weak_schemes '{v}' is not one of refuse, allow"
                        )))
                    }
                }
            }
            "query" => o.query = Some(check_query(need("SELECT ... WHERE login = ?")?)?),
            "disabled_features" => o.disabled_features = feature_list(key, need("imap|pop3")?)?,
            "disable_tls_never_use_in_production" => {
                o.disable_tls_never_use_in_production = flag(key, value)?
            }
            #[cfg(feature = "fault-injection")]
            "inject_panic" => o.inject_panic = flag(key, value)?,
            _ => return Err(ConfigError(format!("unknown option '{key}'"))),
        }
        Ok(())
    }

    /// Adds one endpoint (`url=`, or pam_mapi's `socket=http(s)://...`).
    fn push_url(&mut self, url: &str, origin: Origin) -> Result<(), ConfigError> {
        check_url(url)?;
        // Module arguments replace the file's URL list rather than appending to it.
        if self.url_from != Some(origin) {
            self.opts.urls.clear();
            self.url_from = Some(origin);
        }
        self.opts.urls.push(url.to_string());
        Ok(())
    }

    /// Checks that the backend has what it needs and nothing contradictory.
    fn finish(mut self) -> Result<Options, ConfigError> {
        // socket= is pam_mapi's, and pam_mapi spoke to Kopano only: a line copied from a
        // pam_mapi stack, with only the module's name changed, is a Kopano line.
        let backend =
            match self.backend {
                Some(b) => b,
                None if self.pam_mapi_socket => BackendKind::Kopano,
                None => return Err(ConfigError(
                    "no backend= given (mailstore, axigen, kopano, james, scim or postfixadmin)"
                        .into(),
                )),
            };
        if self.pam_mapi_socket && backend != BackendKind::Kopano {
            return Err(ConfigError(format!(
                "socket= is for backend=kopano (pam_mapi's option), not {}",
                backend.name()
            )));
        }
        let o = &mut self.opts;
        o.backend = backend;
        let name = backend.name();
        if o.http_password.is_some() != o.http_user.is_some() {
            return Err(ConfigError(
                "http_user and http_password go together".into(),
            ));
        }
        if let Some(ca) = &o.cafile {
            // Whoever can change the CA file can impersonate every backend: the config
            // file's rules, links followed through root-owned directories only.
            trusted_file::check_cafile(ca).map_err(ConfigError)?;
        }
        let plaintext_allowed = o.disable_tls_never_use_in_production;
        for url in &o.urls {
            check_url_transport(url, plaintext_allowed)?;
        }
        if let Some(dsn) = &o.dsn {
            let parsed = crate::sql::Dsn::parse(dsn.expose()).map_err(ConfigError)?;
            parsed
                .check_transport(plaintext_allowed)
                .map_err(ConfigError)?;
            if let Some(query) = &o.query {
                check_query_placeholder(query, parsed.engine())?;
            }
            if backend == BackendKind::Kopano && parsed.engine() != crate::sql::Engine::Mysql {
                return Err(ConfigError(
                    "backend=kopano reads the Kopano DB plugin's MySQL/MariaDB tables: dsn= \
                     must be mysql://"
                        .into(),
                ));
            }
        }
        match backend {
            BackendKind::Kopano => {
                let sources = [
                    !o.urls.is_empty(),
                    o.socket.is_some(),
                    o.dsn.is_some(),
                    o.file.is_some(),
                ];
                match sources.iter().filter(|s| **s).count() {
                    1 => {}
                    0 => {
                        return Err(ConfigError(
                            "backend=kopano needs one of dsn=, file=, url= or socket= \
                             (pam_mapi's unwritten default was \
                             socket=http://localhost:236/kopano: write it out)"
                                .into(),
                        ))
                    }
                    _ => {
                        return Err(ConfigError(
                            "backend=kopano needs exactly one of dsn=, file=, url= or socket="
                                .into(),
                        ))
                    }
                }
                if !o.features.is_empty() && o.dsn.is_none() && o.file.is_none() {
                    // Ignoring it would let in users whose features are off: refuse the line.
                    return Err(ConfigError(format!(
                        "{}= (the Kopano feature check) needs dsn= or file=: kopano-server's \
                         logon does not report a user's features; move the line to dsn= \
                         (config file) or file=, or drop {}=",
                        self.feature_key, self.feature_key
                    )));
                }
            }
            BackendKind::Postfixadmin => {
                if o.dsn.is_none() {
                    return Err(ConfigError(
                        "backend=postfixadmin needs dsn= (mysql:// or postgresql://; in the \
                         config file when it holds a password)"
                            .into(),
                    ));
                }
                if !o.urls.is_empty() || o.file.is_some() || o.socket.is_some() {
                    return Err(ConfigError(
                        "backend=postfixadmin reads its database (dsn=): url=, file= and \
                         socket= are for other backends"
                            .into(),
                    ));
                }
            }
            _ => {
                if o.urls.is_empty() {
                    return Err(ConfigError(format!("backend={name} needs url=")));
                }
                if o.dsn.is_some() || o.file.is_some() || o.socket.is_some() {
                    return Err(ConfigError(format!(
                        "dsn=, file= and socket= are for backend=kopano or postfixadmin, not {name}"
                    )));
                }
            }
        }
        if !o.features.is_empty() && backend != BackendKind::Kopano {
            // Only Kopano has per-user features; ignored elsewhere, a pam_mapi service= line
            // moved to another backend would silently stop restricting anyone.
            return Err(ConfigError(format!(
                "{}= (the Kopano feature check) is for backend=kopano only; {name} has no \
                 per-user features: drop {}= from this line",
                self.feature_key, self.feature_key
            )));
        }
        if o.query.is_some() && backend != BackendKind::Postfixadmin {
            return Err(ConfigError(format!(
                "query= is for backend=postfixadmin, not {name}"
            )));
        }
        if backend == BackendKind::Scim && o.token.is_none() && o.http_user.is_none() {
            return Err(ConfigError(
                "backend=scim needs token= or http_user=/http_password= (in the config file)"
                    .into(),
            ));
        }
        Ok(self.opts)
    }
}

/// `query=` must bind the login with the DSN's engine's placeholder (`?` MySQL, `$1`
/// PostgreSQL): the other engine's form would reach the server as a syntax error on every
/// login, or (`?` on PostgreSQL, an operator there) as something else entirely.
fn check_query_placeholder(query: &str, engine: crate::sql::Engine) -> Result<(), ConfigError> {
    let (own, other, name) = match engine {
        crate::sql::Engine::Mysql => ("?", "$1", "mysql://"),
        crate::sql::Engine::Postgres => ("$1", "?", "postgresql://"),
    };
    if !query.contains(own) || query.contains(other) {
        return Err(ConfigError(format!(
            "query= must bind the login name with {own}, the placeholder of dsn={name} \
             (and not {other})"
        )));
    }
    Ok(())
}

fn flag(key: &str, value: Option<&str>) -> Result<bool, ConfigError> {
    match value {
        None => Ok(true),
        Some("yes" | "true" | "1" | "on") => Ok(true),
        Some("no" | "false" | "0" | "off") => Ok(false),
        Some(v) => Err(ConfigError(format!(
            "'{key}' is a switch: write '{key}' or '{key}=no', not '{v}'"
        ))),
    }
}

fn number(key: &str, value: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError(format!(
            "'{key}={value}' must be a whole number from {min} to {max}"
        ))),
    }
}

/// Seconds, fractions allowed (`timeout=2.5`), clamped to what a PAM host can wait.
fn seconds(key: &str, value: &str) -> Result<Duration, ConfigError> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 300.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(ConfigError(format!(
            "'{key}={value}' must be a number of seconds above 0 and at most 300"
        ))),
    }
}

fn feature_list(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    const KNOWN: [&str; 5] = ["imap", "pop3", "mobile", "outlook", "webapp"];
    let mut out = Vec::new();
    for f in value.split(['|', ',', ' ']).filter(|f| !f.is_empty()) {
        let f = f.to_ascii_lowercase();
        if !KNOWN.contains(&f.as_str()) {
            return Err(ConfigError(format!(
                "'{key}': unknown Kopano feature '{f}' (known: {})",
                KNOWN.join(", ")
            )));
        }
        out.push(f);
    }
    Ok(out)
}

/// `query=`: one SELECT whose only input is the login name, as one placeholder (`?` for
/// MySQL, `$1` for PostgreSQL). The login always travels as a bound parameter; this check
/// keeps the statement to one read with one input.
fn check_query(q: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| {
        Err(ConfigError(format!(
            "query= {why}: it must be one SELECT with the login name as its only parameter \
             (? for mysql://, $1 for postgresql://), returning (password, active[, expired])"
        )))
    };
    let q = q.trim();
    let starts_select = q
        .get(..7)
        .is_some_and(|head| head.eq_ignore_ascii_case("select "));
    if !starts_select {
        return bad("does not start with SELECT");
    }
    if q.contains(';') {
        return bad("holds a ';'");
    }
    let question_marks = q.matches('?').count();
    let dollar_one = q.matches("$1").count();
    let other_dollars = q.match_indices('$').any(|(i, _)| !q[i..].starts_with("$1"))
        || q.contains("$10")
        || q.contains("$11");
    match (question_marks, dollar_one) {
        (1, 0) | (0, 1) if !other_dollars => Ok(q.to_string()),
        _ => bad("needs exactly one placeholder"),
    }
}

fn check_url(url: &str) -> Result<(), ConfigError> {
    // Never the URL itself in these words: it may carry user:password@, and this check runs
    // before the refusal of credentials below. The parser's reason quotes nothing of it.
    let parsed =
        url::Url::parse(url).map_err(|e| ConfigError(format!("a url= is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        let host = parsed
            .host_str()
            .map(|h| format!(" (host {h})"))
            .unwrap_or_default();
        return Err(ConfigError(format!(
            "a url={host} must be http:// or https://"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError(
            "url= must not carry credentials; put http_user/http_password in the config file"
                .into(),
        ));
    }
    Ok(())
}

/// The plaintext rule (`crate::offhost`) for one URL: http:// only to loopback.
fn check_url_transport(url: &str, plaintext_allowed: bool) -> Result<(), ConfigError> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(()); // check_url already refused it
    };
    let host = parsed.host_str().unwrap_or("");
    if parsed.scheme() == "http" && !plaintext_allowed && !crate::offhost::is_loopback(host) {
        return Err(ConfigError(crate::offhost::refusal(
            "url= http://",
            host,
            "Use https:// (the certificate is checked against the system store, or against \
             cafile= when set)",
        )));
    }
    Ok(())
}

/// The config file, read under the rules of `trusted_file`.
fn read_config_file(path: &Path) -> Result<Trusted, ConfigError> {
    const ROLE: Role = Role {
        name: "config file",
        option: "config=",
        holds: "a few key = value lines",
    };
    trusted_file::read(path, &ROLE, CONFIG_MAX_BYTES).map_err(ConfigError)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, ConfigError> {
        Options::parse(args)
    }

    fn parsed(args: &[&str]) -> Options {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn a_line_is_parsed_once_and_again_when_its_config_file_changes() {
        use std::os::unix::fs::PermissionsExt;
        let line = ["backend=mailstore", "url=https://shared.example/x"];
        let (Ok(one), Ok(two)) = (Options::shared(&line), Options::shared(&line)) else {
            panic!("the line parses")
        };
        assert!(
            Arc::ptr_eq(&one, &two),
            "the same line is shared, not parsed again"
        );

        let dir = std::env::temp_dir().join(format!("pam_mailauth-shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("mailauth.conf");
        let write = |url: &str| {
            std::fs::write(&file, format!("backend = mailstore\nurl = {url}\n")).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        let config = format!("config={}", file.display());
        let line = [config.as_str(), "quiet"];
        let urls = || match Options::shared(&line) {
            Ok(o) => o.urls.clone(),
            Err(e) => panic!("{e}"),
        };
        write("https://first.example/x");
        assert_eq!(urls(), ["https://first.example/x"]);
        write("https://second.example/x");
        assert_eq!(
            urls(),
            ["https://second.example/x"],
            "an edited config file is read again"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let refused = Options::shared(&line);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            refused.is_err(),
            "a config file that became writable by all is refused"
        );
    }

    #[test]
    fn minimal_mailstore_line() {
        let o = parsed(&["backend=mailstore", "url=https://a.example/x"]);
        assert_eq!(o.backend, BackendKind::Mailstore);
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(o.offline_interval, Duration::from_secs(30));
        assert_eq!(o.connect_timeout, Duration::from_secs(3));
    }

    #[test]
    fn a_url_refused_as_malformed_or_not_http_is_never_echoed() {
        for (url, says) in [
            ("https://u:S3cret@bad host/", "is not a URL"),
            ("ftp://u:S3cret@files.example/", "host files.example"),
            ("mailto:u:S3cret@example.com", "must be http:// or https://"),
        ] {
            let line = format!("url = {url}");
            let e = Options::parse_config_text(&line, &["backend=mailstore"]).unwrap_err();
            let arg = format!("url={url}");
            let a = parse(&["backend=mailstore", &arg]).unwrap_err();
            for e in [e, a] {
                assert!(e.0.contains(says), "{url}: {e}");
                assert!(!e.0.contains("S3cret"), "the password is echoed: {e}");
                assert!(!e.0.contains("u:"), "the user is echoed: {e}");
            }
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse(&["backend=mailstore", "url=http://127.0.0.1/", "colour=blue"]).unwrap_err();
        assert!(e.0.contains("'colour'"), "{e}");
    }

    #[test]
    fn secrets_refused_as_arguments() {
        let e = parse(&[
            "backend=mailstore",
            "url=http://127.0.0.1/",
            "http_password=x",
        ])
        .unwrap_err();
        assert!(e.0.contains("config file"), "{e}");
        assert!(
            !e.0.contains("=x"),
            "the secret itself must not be echoed: {e}"
        );
        assert!(parse(&["backend=kopano", "dsn=mysql://u:p@h/db"]).is_err());
        assert!(parse(&["backend=kopano", "dsn=mysql://u@127.0.0.1/db"]).is_ok());
    }

    #[test]
    fn malformed_values() {
        for bad in [
            "timeout=0",
            "timeout=abc",
            "cache_size=0",
            "debug=maybe",
            "url=ftp://x/",
            "url=http://u:p@h/",
        ] {
            assert!(
                parse(&["backend=mailstore", "url=http://127.0.0.1/", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn kopano_needs_exactly_one_source() {
        assert!(parse(&["backend=kopano"]).is_err());
        assert!(parse(&["backend=kopano", "file=/x", "url=http://127.0.0.1/"]).is_err());
        assert!(parse(&["backend=kopano", "url=http://localhost:236/"]).is_ok());
        assert!(parse(&["backend=kopano", "socket=/var/run/kopano/server.sock"]).is_ok());
        assert!(parse(&["backend=kopano", "socket=/s", "url=http://127.0.0.1/"]).is_err());
        let o = parsed(&["backend=kopano", "socket=file:///var/run/zarafa"]);
        assert_eq!(o.socket, Some(PathBuf::from("/var/run/zarafa")));
        assert!(parse(&["backend=kopano", "socket=/s", "feature=imap"]).is_err());
        assert!(parse(&["backend=kopano", "file=/x", "feature=imap|pop3"]).is_ok());
        assert!(parse(&["backend=mailstore", "url=http://127.0.0.1/", "socket=/s"]).is_err());
    }

    #[test]
    fn every_pam_mapi_socket_form_is_accepted() {
        for url in [
            "http://localhost:236/kopano",
            "http://localhost:236/zarafa",
            "https://kopano.example.com:237/kopano",
        ] {
            let o = parsed(&["backend=kopano", &format!("socket={url}")]);
            assert_eq!(o.urls, vec![url.to_string()]);
            assert_eq!(o.socket, None);
        }
        let o = parsed(&[
            "backend=kopano",
            "socket=file:///var/run/kopano/server.sock",
        ]);
        assert_eq!(o.socket, Some(PathBuf::from("/var/run/kopano/server.sock")));
        for bad in [
            "socket=ftp://h/",
            "socket=server.sock",
            "socket=http://u:p@h/",
        ] {
            assert!(parse(&["backend=kopano", bad]).is_err(), "{bad}");
        }
        // Two sources, whatever their spelling.
        assert!(parse(&["backend=kopano", "socket=http://a:236/", "file=/x"]).is_err());
        let e = parse(&["backend=kopano"]).unwrap_err();
        assert!(e.0.contains("socket=http://localhost:236/kopano"), "{e}");
    }

    #[test]
    fn a_pam_mapi_line_needs_no_backend() {
        let o = parsed(&["socket=http://localhost:236/kopano", "try_first_pass"]);
        assert_eq!(o.backend, BackendKind::Kopano);
        assert_eq!(o.urls, vec!["http://localhost:236/kopano".to_string()]);
        let o = parsed(&["socket=file:///var/run/kopano/server.sock"]);
        assert_eq!(o.backend, BackendKind::Kopano);
        assert!(parse(&["backend=mailstore", "socket=http://localhost:236/kopano"]).is_err());
        assert!(parse(&["try_first_pass"]).is_err());
    }

    #[test]
    fn pam_mapi_service_is_the_feature_check() {
        let o = parsed(&["backend=kopano", "file=/x", "service=imap|pop3"]);
        assert_eq!(o.features, vec!["imap", "pop3"]);
        let e = parse(&[
            "backend=kopano",
            "socket=http://localhost:236/kopano",
            "service=imap",
        ])
        .unwrap_err();
        assert!(e.0.starts_with("service= "), "{e}");
        assert!(e.0.contains("dsn="), "{e}");
    }

    #[test]
    fn features_are_refused_on_every_backend_but_kopano() {
        let dsn = "dsn=mysql://u@127.0.0.1/pfa";
        for line in [
            &["backend=mailstore", "url=https://m.example.com/"][..],
            &["backend=axigen", "url=https://m.example.com/"],
            &["backend=james", "url=http://127.0.0.1:8000"],
            &["backend=postfixadmin", dsn],
        ] {
            assert!(parse(line).is_ok(), "{line:?}");
            for key in ["feature", "service"] {
                let mut with = line.to_vec();
                let feature = format!("{key}=imap");
                with.push(&feature);
                let e = parse(&with).unwrap_err();
                assert!(e.0.starts_with(&format!("{key}= ")), "{e}");
                assert!(e.0.contains("backend=kopano only"), "{e}");
            }
        }
        assert!(parse(&["backend=kopano", "file=/x", "service=imap"]).is_ok());
    }

    #[test]
    fn postfixadmin_options() {
        let base = [
            "backend=postfixadmin",
            "dsn=postgresql://pfa@127.0.0.1/postfixadmin",
        ];
        let o = parsed(&base);
        assert_eq!(o.backend, BackendKind::Postfixadmin);
        assert_eq!(o.weak_schemes, WeakSchemes::Refuse);
        assert!(parse(&["backend=postfixadmin"]).is_err());
        assert!(parse(&["backend=postfixadmin", "dsn=sqlite:///x"]).is_err());
        let with = |extra: &str| parse(&[base[0], base[1], extra]);
        assert_eq!(
            with("weak_schemes=allow").map(|o| o.weak_schemes),
            Ok(WeakSchemes::Allow)
        );
        assert!(with("weak_schemes=maybe").is_err());
        assert!(with("url=http://localhost/").is_err());
        assert!(with("query=select email, password, 1 FROM users WHERE email = $1").is_ok());
        let mysql = |extra: &str| {
            parse(&[
                "backend=postfixadmin",
                "dsn=mysql://pfa@127.0.0.1/postfixadmin",
                extra,
            ])
        };
        let q = "query=SELECT username, password, active FROM mailbox WHERE username = ?";
        assert!(mysql(q).is_ok());
        // The placeholder of the other engine: refused at configuration time.
        let e = with(q).unwrap_err();
        assert!(e.0.contains("$1") && e.0.contains("postgresql://"), "{e}");
        let e = mysql("query=SELECT username, password, 1 FROM m WHERE username = $1").unwrap_err();
        assert!(e.0.contains("with ?") && e.0.contains("mysql://"), "{e}");
        for bad in [
            "query=DELETE FROM mailbox WHERE username = ?",
            "query=SELECT password, active FROM mailbox WHERE username = ? OR name = ?",
            "query=SELECT password, active FROM mailbox",
            "query=SELECT 1; DROP TABLE mailbox WHERE x = ?",
            "query=SELECT password, active FROM m WHERE a = $1 AND b = $2",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
        // query= belongs to postfixadmin only.
        assert!(parse(&[
            "backend=kopano",
            "file=/x",
            "query=SELECT a, b FROM t WHERE c = ?"
        ])
        .is_err());
    }

    #[test]
    fn mapping_order() {
        let m = UserMapping {
            lowercase: true,
            strip_domain: true,
            domain: Some("Example.COM".into()),
        };
        assert_eq!(m.apply("John@Other.org"), "john@example.com");
        let m = UserMapping {
            domain: Some("example.com".into()),
            ..Default::default()
        };
        assert_eq!(m.apply("a@b"), "a@b");
        assert_eq!(m.apply("a"), "a@example.com");
    }

    #[test]
    fn lowercase_folds_ascii_only_and_mapping_is_idempotent() {
        let m = UserMapping {
            lowercase: true,
            strip_domain: true,
            domain: Some("example.com".into()),
        };
        assert_eq!(m.apply("\u{212A}ATE"), "\u{212A}ate@example.com");
        assert_eq!(m.apply("ÜLLA@x.org"), "Ülla@example.com");
        // set_pam_user makes the mapped name PAM_USER; the account phase maps it again.
        for name in ["Alice@Victim.Example", "\u{212A}ate", "@x", "bob"] {
            assert_eq!(m.apply(&m.apply(name)), m.apply(name), "{name}");
        }
    }

    #[test]
    fn set_pam_user_and_directory_ttl() {
        let o = parsed(&["backend=mailstore", "url=https://a/"]);
        assert!(!o.set_pam_user);
        assert_eq!(o.directory_ttl, Duration::from_secs(60));
        let o = parsed(&[
            "backend=mailstore",
            "url=https://a/",
            "set_pam_user",
            "directory_ttl=0",
        ]);
        assert!(o.set_pam_user);
        assert_eq!(o.directory_ttl, Duration::ZERO);
        assert!(parse(&["backend=mailstore", "url=https://a/", "directory_ttl=-1"]).is_err());
        assert!(parse(&["backend=mailstore", "url=https://a/", "set_pam_user=maybe"]).is_err());
    }

    #[test]
    fn a_malformed_file_line_is_never_echoed() {
        for line in ["http_password s3cret", "token: s3cret", "Token = s3cret"] {
            let e =
                Options::parse_config_text(line, &["backend=mailstore", "url=http://127.0.0.1/"])
                    .err()
                    .map(|e| e.0)
                    .unwrap_or_default();
            assert!(e.contains("line 1"), "{line}: {e}");
            assert!(!e.contains("s3cret"), "{line}: {e}");
        }
    }

    #[test]
    fn plaintext_http_only_to_loopback_unless_opted_out() {
        for url in [
            "http://127.0.0.1:8080/x",
            "http://127.8.9.10/x",
            "http://[::1]:8080/x",
            "http://localhost/x",
            "https://mail.example.com/x",
        ] {
            assert!(
                parse(&["backend=mailstore", &format!("url={url}")]).is_ok(),
                "{url}"
            );
        }
        for url in [
            "http://mail.example.com/x",
            "http://192.0.2.10/x",
            "http://[::2]/x",
        ] {
            let e = parse(&["backend=mailstore", &format!("url={url}")]).unwrap_err();
            assert!(e.0.contains("disable_tls_never_use_in_production"), "{e}");
            let with_opt_out = [
                "backend=mailstore",
                &format!("url={url}"),
                "disable_tls_never_use_in_production",
            ];
            assert!(parse(&with_opt_out).is_ok(), "{url}");
        }
    }

    #[test]
    fn a_dsn_password_in_any_form_keeps_the_dsn_out_of_module_arguments() {
        for dsn in [
            "mysql://kopano:s3cret@127.0.0.1/kopano",
            "mysql://kopano@127.0.0.1/kopano?password=s3cret",
            "mysql://kopano:pa/ss@127.0.0.1/kopano",
        ] {
            let e = parse(&["backend=kopano", &format!("dsn={dsn}")]).unwrap_err();
            assert!(!e.0.contains("s3cret") && !e.0.contains("ss@"), "{e}");
        }
        assert!(parse(&["backend=kopano", "dsn=mysql://kopano@127.0.0.1/kopano"]).is_ok());
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let o = Options {
            http_password: Some(Secret::new("pw-xyz")),
            token: Some(Secret::new("tok-xyz")),
            dsn: Some(Secret::new("mysql://u:dsn-xyz@h/db")),
            ..Options::default()
        };
        let shown = format!("{o:?}");
        assert!(!shown.contains("xyz"), "{shown}");
    }
}
