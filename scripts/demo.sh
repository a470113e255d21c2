#!/usr/bin/env bash
# One real PAM authentication end to end, on a fresh machine, with no outside service:
# builds the module, then runs examples/demo.rs (a local MailStore-style endpoint + real libpam).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-packages.sh
ensure_packages libpam0g-dev libssl-dev pkg-config
cargo build --release --lib --quiet
PAM_MAILAUTH_SO="$PWD/target/release/libpam_mailauth.so" cargo run --release --quiet --example demo
