//! Plaintext stays on this machine: the one rule for every transport (HTTP URLs and database
//! DSNs). A password, token or stored hash may travel unencrypted only to loopback or over a
//! unix socket; toward any other host the module refuses the configuration, unless the admin
//! sets the explicit opt-out (named after SSSD's `ldap_auth_disable_tls_never_use_in_production`).
//!
//! The host is judged as written, after parsing, and never resolved: an IP literal in
//! 127.0.0.0/8 or `::1`, or the name `localhost`. A name that merely resolves to loopback today
//! (through /etc/hosts or DNS) could resolve elsewhere tomorrow, and resolving would itself be
//! a network query made at configuration time.

use std::net::IpAddr;

/// The option that allows plaintext to other hosts. Its name says what it costs.
pub const OPT_OUT: &str = "disable_tls_never_use_in_production";

/// Whether `host` (a URL's or DSN's host as written; IPv6 with or without brackets) is this
/// machine's loopback.
pub fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6.is_loopback(),
        Err(_) => {
            let name = bare.strip_suffix('.').unwrap_or(bare);
            name.eq_ignore_ascii_case("localhost")
        }
    }
}

/// The configuration error for plaintext toward `host`, telling the admin the two ways out.
pub fn refusal(what: &str, host: &str, use_tls: &str) -> String {
    format!(
        "{what} to {host} is not encrypted and {host} is not this machine: passwords would \
         cross the network in plaintext. {use_tls}; or, only on a network you fully trust, \
         set {OPT_OUT}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_as_written() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST",
            "localhost.",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "192.0.2.10",
            "128.0.0.1",
            "::2",
            "[::ffff:192.0.2.1]",
            "localhost.example.com",
            "mylocalhost",
            "db.example",
            "0.0.0.0",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
