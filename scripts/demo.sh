#!/usr/bin/env bash
# One real PAM authentication end to end, on a fresh machine, with no outside service:
# builds the module, then runs examples/demo.rs (a local MailStore-style endpoint + real libpam).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in libpam0g-dev libssl-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "please install: ${need[*]} (or run this as root)" >&2; exit 1
  fi
fi
cargo build --release --lib --quiet
PAM_MAILAUTH_SO="$PWD/target/release/libpam_mailauth.so" cargo run --release --quiet --example demo
