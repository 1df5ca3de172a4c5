#!/usr/bin/env bash
# Make sure the PostgreSQL server the deployment tests use (hvla_platform_tests/deploy) answers, on a
# fresh Debian 12 machine too: scripts/test.sh runs this before pytest. Idempotent; when the server
# already answers it only runs one `psql` query (well under a second) and prints nothing.
#
# The server is HVLA_TEST_PG_HOST:HVLA_TEST_PG_PORT (default 127.0.0.1:5432), user HVLA_TEST_PG_USER
# (default postgres), password HVLA_TEST_PG_PASSWORD (default empty) — the same variables the tests
# read. When nothing answers there and the host is this machine:
#   1. apt-get install postgresql (Debian's package; PostgreSQL 15 on Debian 12) if it is missing;
#   2. the cluster on that port (pg_lsclusters) is started — with systemctl when systemd runs, else
#      `pg_ctlcluster --skip-systemctl-redirect` (containers, CI) — or, if no cluster uses that
#      port, one is created with pg_createcluster and started;
#   3. if the server then refuses the password-less login over TCP (Debian's default pg_hba.conf asks
#      for a password) and no HVLA_TEST_PG_PASSWORD is set, loopback-only `trust` lines for that
#      user are added at the top of the cluster's pg_hba.conf (marked "hvla-platform tests") and
#      the server reloaded. That is what a development/CI machine of this project has; do not point
#      this script at a server that holds anything else.
# Exits non-zero, saying why, when no server can be had (a remote host that does not answer, a
# failed install or start), so the test run fails instead of skipping the PostgreSQL tests.
set -euo pipefail

HOST="${HVLA_TEST_PG_HOST:-127.0.0.1}"
PORT="${HVLA_TEST_PG_PORT:-5432}"
PGUSER_="${HVLA_TEST_PG_USER:-postgres}"
PASSWORD="${HVLA_TEST_PG_PASSWORD:-}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
say() { echo "[ensure_postgres] $*"; }
die() { echo "[ensure_postgres] ERROR: $*" >&2; exit 1; }

# can_connect: one query as the tests connect (TCP, user, password); the error text is left in $err
err=""
can_connect() {
  command -v psql >/dev/null 2>&1 || { err="psql is not installed"; return 1; }
  if err=$(PGPASSWORD="$PASSWORD" PGCONNECT_TIMEOUT=5 psql -X -A -t -q -h "$HOST" -p "$PORT" \
             -U "$PGUSER_" -d postgres -c 'select 1' 2>&1 >/dev/null); then
    return 0
  fi
  [ -n "$err" ] || err="psql failed"
  return 1
}

can_connect && exit 0

case "$HOST" in
  127.0.0.1|localhost|::1) ;;
  *) die "no PostgreSQL server answers at $HOST:$PORT as '$PGUSER_' ($err). It is not this machine, so
   it cannot be started from here: start it, or unset HVLA_TEST_PG_HOST to use a local one." ;;
esac

# 1. Debian's package
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1 \
    || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  say "apt-get install postgresql"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 postgresql >/dev/null
fi

# 2. the cluster on $PORT: found, or created; then started
read -r VER NAME STATUS < <(pg_lsclusters --no-header 2>/dev/null | awk -v p="$PORT" '$3 == p {print $1, $2, $4; exit}') || true
if [ -z "${VER:-}" ]; then
  VER=$(ls /usr/lib/postgresql | sort -V | tail -1)
  NAME=main
  [ -d "/etc/postgresql/$VER/main" ] && NAME=hvla_test
  say "pg_createcluster -p $PORT $VER $NAME"
  $SUDO pg_createcluster -p "$PORT" "$VER" "$NAME" >/dev/null
  STATUS=down
fi
if [ "$STATUS" != online ]; then
  say "starting PostgreSQL $VER/$NAME on port $PORT"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl start "postgresql@$VER-$NAME"
  else
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$VER" "$NAME" start
  fi
fi
for _ in $(seq 1 60); do
  pg_isready -q -h "$HOST" -p "$PORT" && break
  sleep 0.5
done

# 3. a password-less login over loopback for the tests' user (only when it is refused)
if ! can_connect; then
  if [ -z "$PASSWORD" ] && printf '%s' "$err" | grep -qiE "password|authentication"; then
    HBA="/etc/postgresql/$VER/$NAME/pg_hba.conf"
    [ -f "$HBA" ] || die "cannot find the pg_hba.conf of $VER/$NAME ($HBA): $err"
    say "allowing '$PGUSER_' from loopback without a password ($HBA)"
    tmp=$(mktemp)
    {
      echo "# hvla-platform tests (scripts/ensure_postgres.sh): $PGUSER_ over loopback without a password"
      echo "host all $PGUSER_ 127.0.0.1/32 trust"
      echo "host all $PGUSER_ ::1/128 trust"
      $SUDO cat "$HBA"
    } > "$tmp"
    $SUDO cp "$tmp" "$HBA"
    rm -f "$tmp"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$VER" "$NAME" reload
    sleep 1
  fi
  can_connect || die "PostgreSQL $VER/$NAME on port $PORT does not accept '$PGUSER_' from $HOST: $err
   (log: /var/log/postgresql/postgresql-$VER-$NAME.log)"
fi
say "PostgreSQL $VER/$NAME answers at $HOST:$PORT"
