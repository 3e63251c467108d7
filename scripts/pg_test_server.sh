#!/usr/bin/env bash
# Start (or reuse) a throw-away PostgreSQL server on 127.0.0.1 for the tests; prints its URL.
# Usage: scripts/pg_test_server.sh [start|stop]. Needs Debian's postgresql package (setup.sh --test).
# Connections need a password (scram-sha-256, generated at initdb, kept owner-only beside the data
# folder); its socket lives inside the data folder (peer authentication), not in /tmp.
set -euo pipefail
PORT=${FORMSTATION_PG_PORT:-55432}
DATA=${FORMSTATION_PG_DATA:-/tmp/formstation-pg}
PW_FILE="$DATA.password"      # the postgres role's password (600)
PGPASS="$DATA.pgpass"         # the same, for psql/createdb (libpq password file, 600)
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -n "$BIN" ]] || { echo "pg_test_server: PostgreSQL is not installed" >&2; exit 1; }
as_pg() { if [[ $(id -u) -eq 0 ]]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
owned() { [[ $(id -u) -eq 0 ]] && chown postgres: "$@"; chmod 600 "$@" 2>/dev/null || true; }
running() { as_pg "$BIN/pg_ctl -D $DATA status" >/dev/null 2>&1; }
case "${1:-start}" in
  start)
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
      mkdir -p "$DATA"; chmod 700 "$DATA"; [[ $(id -u) -eq 0 ]] && chown postgres: "$DATA"
      (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$PW_FILE"); owned "$PW_FILE"
      as_pg "$BIN/initdb -D $DATA --auth-local=peer --auth-host=scram-sha-256 --pwfile=$PW_FILE -U postgres -E UTF8 --locale=C.UTF-8" >/dev/null
    elif [[ ! -s "$PW_FILE" ]]; then  # made by an earlier version with 'trust': given a password, in place
      running && as_pg "$BIN/pg_ctl -D $DATA -m fast stop" >/dev/null
      (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$PW_FILE"); owned "$PW_FILE"
      as_pg "$BIN/postgres --single -D $DATA postgres" >/dev/null <<<"ALTER USER postgres PASSWORD '$(cat "$PW_FILE")';"
      as_pg "printf '%s\n' 'local all all peer' 'host all all 127.0.0.1/32 scram-sha-256' 'host all all ::1/128 scram-sha-256' > $DATA/pg_hba.conf"
    fi
    PW=$(cat "$PW_FILE")
    (umask 077; echo "127.0.0.1:$PORT:*:postgres:$PW" > "$PGPASS"); owned "$PGPASS"
    if ! running; then
      as_pg "$BIN/pg_ctl -D $DATA -l $DATA/server.log -w -o \"-p $PORT -h 127.0.0.1 -k $DATA\" start" >/dev/null
    fi
    PSQL="PGPASSFILE=$PGPASS $BIN/psql -h 127.0.0.1 -p $PORT -U postgres"
    as_pg "$PSQL -tc \"SELECT 1 FROM pg_database WHERE datname='formstation_test'\"" | grep -q 1 \
      || as_pg "PGPASSFILE=$PGPASS $BIN/createdb -h 127.0.0.1 -p $PORT -U postgres formstation_test"
    echo "postgresql+psycopg://postgres:$PW@127.0.0.1:$PORT/formstation_test"
    ;;
  stop)
    as_pg "$BIN/pg_ctl -D $DATA -m fast stop" >/dev/null 2>&1 || true
    ;;
esac
