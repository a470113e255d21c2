# Sourced by the scripts in this folder: ensure_packages PKG... installs the Debian packages
# that are missing (as root), or names them and fails (as anyone else).
#
# The tests start their own private daemons (saslauthd, Apache, MariaDB, Postfix, Dovecot), so
# no package may start a system instance while it is installed (Dovecot's would bind *:143),
# and none may ask a question: a temporary /usr/sbin/policy-rc.d that exits 101 keeps
# invoke-rc.d from starting anything, and Postfix is preseeded to "No configuration".
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages (run as root to install them): ${missing[*]}" >&2
    return 1
  fi
  echo "== installing: ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d saved=""
  if [ -e "$policy" ]; then
    saved=$(mktemp)
    cp -p "$policy" "$saved"
  fi
  printf '#!/bin/sh\n# ensure-packages.sh: no daemon starts during this install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  local status=0
  # A fresh machine may still be running its own apt at boot: wait for the lock, don't fail.
  local wait=(-o DPkg::Lock::Timeout=600)
  DEBIAN_FRONTEND=noninteractive apt-get "${wait[@]}" update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get "${wait[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    status=$?
  if [ -n "$saved" ]; then
    mv "$saved" "$policy"
  else
    rm -f "$policy"
  fi
  return "$status"
}
