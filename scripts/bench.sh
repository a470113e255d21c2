#!/usr/bin/env bash
# The side-by-side benchmark of BENCHMARKS.md, in ONE run on one machine:
#   scripts/bench.sh                     (as root, on Debian; see BENCHMARKS.md)
# Starts, in a private temp dir and on free loopback ports: nginx answering a successful login
# as MailStore, Axigen WebMail, James webadmin and kopano-server answer it (ApacheBench times
# the same requests on it, as the no-thread-hop baseline), a private MariaDB holding Kopano's tables and PostfixAdmin's mailbox
# and domain tables (hashes made by doveadm pw), and saslauthd (4 workers,
# under pam_wrapper); then runs examples/bench.rs, which prints one table with the ratios and
# PASS/MISS per target. Everything it started is stopped when it exits.
# Knobs: BENCH_ROUNDS (default 9), BENCH_N (operations per round, default 300), BENCH_ONLY
#        (comma-separated case ids, e.g. a,c,d; 'h*' = every id starting with h),
#        BENCH_SASL_SECONDS (per saslauthd case, default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

. scripts/ensure-packages.sh
ensure_packages nginx-light mariadb-server sasl2-bin libpam-mysql libpam-wrapper libpam0g-dev curl python3 \
  dovecot-core apache2-utils
PATH=$PATH:/usr/sbin:/sbin
WRAPPER=$(ls /usr/lib/*/libpam_wrapper.so 2>/dev/null | head -1)

echo "== build (release)"
cargo build --release --lib --example bench
export PAM_MAILAUTH_SO="$ROOT/target/release/libpam_mailauth.so"

WORK=$(mktemp -d /tmp/pam_mailauth-bench.XXXXXX)
chmod 755 "$WORK"
PGIDS=()
cleanup() {
  for g in "${PGIDS[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  sleep 0.5
  for g in "${PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
  # Reap them here, so the shell does not report the daemons it started as "Killed".
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # command, what
  for _ in $(seq 1 100); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$2 did not come up" >&2; exit 1
}

echo "== nginx (MailStore, Axigen, James and Kopano endpoints answering a fixed success)"
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
user root;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location = /mailstore-integration/index.php {
      default_type application/json;
      return 200 '{"succeeded": true}';
    }
    # Axigen WebMail's root (protocols.md, "Axigen WebMail"): the login POST answers 303 with
    # the _hmail cookie, the _h Location and, for custom=ajax, the success body; the logout
    # (GET with _h and the cookie) lands on the login page. nginx's 'return 303' cannot carry
    # a body, so the POST is turned into the 303 through error_page.
    location = /axigen/ {
      if (\$request_method = POST) { return 418; }
      default_type "text/html; charset=utf-8";
      return 200 '';
    }
    error_page 418 =303 @axigen_login;
    location @axigen_login {
      default_type "text/html; charset=utf-8";
      add_header Set-Cookie "_hmail=bench-cookie;Path=/;Version=1;" always;
      add_header Location "/?_h=bench-url-key" always;
      return 200 '{ success: true, sessionKey: "bench-session" }';
    }
    # James webadmin: POST /users/{user}/verify answers 204 for the right password; the
    # account phase's HEAD /users/{user} answers 200.
    location ~ ^/james/users/[^/]+/verify\$ {
      if (\$request_method != POST) { return 405; }
      return 204;
    }
    location ~ ^/james/users/[^/]+\$ {
      if (\$request_method != HEAD) { return 405; }
      return 200;
    }
    # kopano-server's gSOAP endpoint: HTTP 200 and a logonResponse with er 0.
    location = /kopano/ {
      if (\$request_method != POST) { return 405; }
      default_type "text/xml; charset=utf-8";
      return 200 '<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:ns="urn:zarafa"><SOAP-ENV:Body SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><ns:logonResponse><er>0</er><ulSessionId>20015998343868</ulSessionId><lpszVersion>0,8,7,80,0</lpszVersion><ulCapabilities>848</ulCapabilities><sLicenseResponse></sLicenseResponse><sServerGuid>AAECAwQFBgcICQoLDA0ODw==</sServerGuid></ns:logonResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>
';
    }
  }
}
EOF
setsid nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" </dev/null >"$WORK/nginx/out.log" 2>&1 &
PGIDS+=($!)
URL="http://127.0.0.1:$NGINX_PORT/mailstore-integration/index.php"
AXIGEN_URL="http://127.0.0.1:$NGINX_PORT/axigen/"
JAMES_URL="http://127.0.0.1:$NGINX_PORT/james"
KOPANO_URL="http://127.0.0.1:$NGINX_PORT/kopano/"
wait_for "curl -sf -d cmd=auth $URL" nginx

echo "== MariaDB (private; Kopano DB-plugin tables)"
DB_PORT=$(free_port)
mkdir -p "$WORK/db"
mariadb-install-db --no-defaults --user=root --datadir="$WORK/db/data" --skip-test-db >"$WORK/db/install.log" 2>&1
setsid mariadbd --no-defaults --user=root --datadir="$WORK/db/data" --socket="$WORK/db/sock" \
  --port="$DB_PORT" --bind-address=127.0.0.1 --skip-log-bin --skip-name-resolve \
  </dev/null >"$WORK/db/out.log" 2>&1 &
PGIDS+=($!)
wait_for "mariadb --no-defaults -S $WORK/db/sock -u root -e 'select 1'" mariadbd
DB_PASSWORD="bench-$RANDOM$RANDOM"
# Kopano's tables (protocols.md): object/objectproperty; active users have objectclass 65537;
# passwords are 8 hex salt + MD5(salt || password). 'md5password' is an extra property holding
# the plain MD5 that pam_mysql understands (crypt=md5), so both modules read the same rows.
mariadb --no-defaults -S "$WORK/db/sock" -u root <<EOF
CREATE DATABASE kopano;
USE kopano;
CREATE TABLE object (
  id int(11) unsigned NOT NULL AUTO_INCREMENT, externid varbinary(255) DEFAULT NULL,
  objectclass int(11) unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (id), UNIQUE KEY externid (externid, objectclass), KEY objectclass (objectclass));
CREATE TABLE objectproperty (
  objectid int(11) unsigned NOT NULL DEFAULT 0, propname varchar(255) BINARY NOT NULL,
  value text, PRIMARY KEY (objectid, propname), KEY propname (propname, value(255)));
CREATE TABLE objectmvproperty (
  objectid int(11) unsigned NOT NULL DEFAULT 0, propname varchar(255) BINARY NOT NULL,
  orderid tinyint(11) unsigned NOT NULL DEFAULT 0, value text,
  PRIMARY KEY (objectid, orderid, propname), KEY propname (propname, value(255)));
DELIMITER //
CREATE PROCEDURE fill()
BEGIN
  DECLARE i INT DEFAULT 0;
  WHILE i < 2000 DO
    INSERT INTO object (externid, objectclass) VALUES (CONCAT('ext', i), 65537);
    SET @id = LAST_INSERT_ID(), @salt = LPAD(HEX(i), 8, '0');
    SET @login = IF(i = 1000, 'john.doe', CONCAT('user', i));
    SET @pw = IF(i = 1000, 'Passw0rd', CONCAT('pw', i));
    INSERT INTO objectproperty VALUES (@id, 'loginname', @login),
      (@id, 'password', CONCAT(LOWER(@salt), MD5(CONCAT(LOWER(@salt), @pw)))),
      (@id, 'md5password', MD5(@pw)), (@id, 'fullname', @login),
      (@id, 'emailaddress', CONCAT(@login, '@example.test'));
    SET i = i + 1;
  END WHILE;
END //
DELIMITER ;
CALL fill();
CREATE USER 'bench'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT SELECT ON kopano.* TO 'bench'@'127.0.0.1';
EOF

echo "== PostfixAdmin tables (same MariaDB; one mailbox per password scheme, made by doveadm pw)"
# The columns backend=postfixadmin's default lookup reads, typed as PostfixAdmin's upgrade.php
# creates them in MySQL, and 2000 other mailboxes so that the lookup is not in a tiny table.
# SCHEME@example.test holds doveadm's output as PostfixAdmin's dovecot:SCHEME stores it
# ({SCHEME}...); crypt-FAMILY@example.test the same crypt(3) string without the prefix, as its
# php_crypt:/md5crypt settings store it, which pam_mysql's crypt=1 reads. Parameters are the
# defaults of Dovecot and PHP: SHA512-crypt 5000 rounds, bcrypt cost 10 (PHP's; doveadm's own
# default is 5), ARGON2I m=32 MiB t=4, ARGON2ID m=64 MiB t=3.
pw_hash() { doveadm pw -s "$1" -p Passw0rd "${@:2}"; }
SHA512_CRYPT=$(pw_hash SHA512-CRYPT)
MD5_CRYPT=$(pw_hash MD5-CRYPT)
BLF_CRYPT=$(pw_hash BLF-CRYPT -r 10)
ARGON2I=$(pw_hash ARGON2I)
ARGON2ID=$(pw_hash ARGON2ID)
SSHA512=$(pw_hash SSHA512)
SHA512_RAW=${SHA512_CRYPT#*\}} MD5_RAW=${MD5_CRYPT#*\}} BLF_RAW=${BLF_CRYPT#*\}}
mariadb --no-defaults -S "$WORK/db/sock" -u root <<EOF
CREATE DATABASE postfixadmin;
USE postfixadmin;
CREATE TABLE domain (
  domain varchar(255) CHARACTER SET latin1 COLLATE latin1_general_ci NOT NULL,
  description varchar(255) NOT NULL DEFAULT '',
  active tinyint(1) NOT NULL DEFAULT '1', password_expiry int DEFAULT 0,
  PRIMARY KEY (domain)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE mailbox (
  username varchar(255) CHARACTER SET latin1 COLLATE latin1_general_ci NOT NULL,
  password varchar(255) CHARACTER SET latin1 COLLATE latin1_general_ci NOT NULL,
  name varchar(255) NOT NULL DEFAULT '',
  local_part varchar(255) CHARACTER SET latin1 COLLATE latin1_general_ci NOT NULL,
  domain varchar(255) CHARACTER SET latin1 COLLATE latin1_general_ci NOT NULL,
  active tinyint(1) NOT NULL DEFAULT '1',
  password_expiry datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  PRIMARY KEY (username), KEY domain (domain)) DEFAULT CHARSET=utf8mb4;
INSERT INTO domain (domain) VALUES ('example.test');
DELIMITER //
CREATE PROCEDURE fill()
BEGIN
  DECLARE i INT DEFAULT 0;
  WHILE i < 2000 DO
    INSERT INTO mailbox (username, password, local_part, domain)
      VALUES (CONCAT('user', i, '@example.test'), '$SHA512_CRYPT', CONCAT('user', i), 'example.test');
    SET i = i + 1;
  END WHILE;
END //
DELIMITER ;
CALL fill();
INSERT INTO mailbox (username, password, local_part, domain) VALUES
  ('sha512-crypt@example.test', '$SHA512_CRYPT', 'sha512-crypt', 'example.test'),
  ('crypt-sha512@example.test', '$SHA512_RAW', 'crypt-sha512', 'example.test'),
  ('md5-crypt@example.test', '$MD5_CRYPT', 'md5-crypt', 'example.test'),
  ('crypt-md5@example.test', '$MD5_RAW', 'crypt-md5', 'example.test'),
  ('blf-crypt@example.test', '$BLF_CRYPT', 'blf-crypt', 'example.test'),
  ('crypt-blf@example.test', '$BLF_RAW', 'crypt-blf', 'example.test'),
  ('argon2i@example.test', '$ARGON2I', 'argon2i', 'example.test'),
  ('argon2id@example.test', '$ARGON2ID', 'argon2id', 'example.test'),
  ('ssha512@example.test', '$SSHA512', 'ssha512', 'example.test');
GRANT SELECT ON postfixadmin.* TO 'bench'@'127.0.0.1';
EOF

echo "== pam_exec script (what admins write today)"
cat >"$WORK/check.sh" <<EOF
#!/bin/sh
# pam_exec expose_authtok: the password arrives on stdin (NUL-terminated).
pass=\$(tr -d '\\000')
curl -sf -m 10 --data-urlencode cmd=auth --data-urlencode "user=\$PAM_USER" \\
  --data-urlencode "pass=\$pass" "$URL" | grep -q '"succeeded": *true'
EOF
chmod 755 "$WORK/check.sh"

echo "== saslauthd (-a pam -n 4, under pam_wrapper)"
mkdir -p "$WORK/sasl/run" "$WORK/sasl/services"
printf 'auth required pam_permit.so\naccount required pam_permit.so\n' >"$WORK/sasl/services/permit"
printf 'auth required %s backend=mailstore url=%s quiet\naccount required %s backend=mailstore url=%s quiet\n' \
  "$PAM_MAILAUTH_SO" "$URL" "$PAM_MAILAUTH_SO" "$URL" >"$WORK/sasl/services/mailauth"
printf 'auth required %s backend=mailstore url=%s quiet cache_ttl=300\naccount required %s backend=mailstore url=%s quiet cache_ttl=300\n' \
  "$PAM_MAILAUTH_SO" "$URL" "$PAM_MAILAUTH_SO" "$URL" >"$WORK/sasl/services/mailauth_cached"
printf 'auth required pam_deny.so\naccount required pam_deny.so\n' >"$WORK/sasl/services/other"
LD_PRELOAD="$WRAPPER" PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$WORK/sasl/services" \
  setsid saslauthd -a pam -m "$WORK/sasl/run" -n 4 -d </dev/null >"$WORK/sasl/log" 2>&1 &
PGIDS+=($!)
wait_for "test -S $WORK/sasl/run/mux" saslauthd

echo "== machine: $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== command: scripts/bench.sh (BENCH_ROUNDS=${BENCH_ROUNDS:-9} BENCH_N=${BENCH_N:-300} BENCH_SASL_SECONDS=${BENCH_SASL_SECONDS:-5})"
BENCH_URL="$URL" BENCH_AXIGEN_URL="$AXIGEN_URL" BENCH_JAMES_URL="$JAMES_URL" BENCH_KOPANO_URL="$KOPANO_URL" \
BENCH_EXEC_SCRIPT="$WORK/check.sh" \
BENCH_MYSQL_PORT="$DB_PORT" BENCH_MYSQL_PASSWORD="$DB_PASSWORD" BENCH_PFA_PORT="$DB_PORT" \
BENCH_SASL_MUX="$WORK/sasl/run/mux" \
  "$ROOT/target/release/examples/bench"
