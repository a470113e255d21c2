#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs (as root, on Debian), builds the module
# once in release mode, then runs every test against that build through real libpam, real
# hosts (saslauthd, Apache) and a private MariaDB.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/ensure-packages.sh
PACKAGES=(libpam0g-dev libssl-dev pkg-config gcc sasl2-bin apache2
          libapache2-mod-authnz-pam mariadb-server binutils curl openssl ca-certificates
          postfix libsasl2-modules dovecot-core dovecot-imapd
          dpkg-dev lintian man-db groff rpm rpmlint postgresql iproute2
          # backend=postfixadmin: the real hash generators (PostfixAdmin's pacrypt under
          # php-cli, doveadm pw), its upgrade.php for the schema, and a private PostgreSQL.
          postfixadmin php-cli php-mysql php-pgsql)
# PostfixAdmin's package would otherwise ask (and try) to set up a database of its own.
if [ "$(id -u)" = 0 ] && command -v debconf-set-selections >/dev/null; then
  echo "postfixadmin postfixadmin/dbconfig-install boolean false" | debconf-set-selections
fi
ensure_packages "${PACKAGES[@]}"

# packaging/build-deb (tests/package.rs) builds the .deb with cargo-deb: one install, pinned.
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked --quiet cargo-deb --version 3.8.0

echo "== build (release, shared by every test stage)"
cargo build --release --lib
export PAM_MAILAUTH_SO="$PWD/target/release/libpam_mailauth.so"

echo "== lint"
cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings

echo "== tests"
# Files the tests create stand for an admin's files: the module's ownership and mode checks
# (config=, cafile=, hash files) judge them, so they are made as with Debian's default umask.
umask 022
# A test that checks the module's panic containment panics on purpose; with backtraces each
# panic fills a screen, and the CI log keeps only a part of the output.
export RUST_BACKTRACE=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --no-fail-fast -- --test-threads="${TEST_THREADS:-4}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
if [ "$status" != 0 ]; then
  # Repeated at the end, where a shortened log still shows it: each failure's first lines.
  echo "== failures, first lines of each"
  awk '/^---- .* ----$/ { n = 30 } n > 0 { print; n-- }' "$log" | head -n 400
fi
exit "$status"
