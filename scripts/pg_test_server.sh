#!/usr/bin/env bash
# Start (or reuse) a throw-away PostgreSQL server on 127.0.0.1 for the tests; prints its URL.
# Usage: scripts/pg_test_server.sh [start|stop]. Needs Debian's postgresql package (setup.sh --test).
set -euo pipefail
PORT=${FORMSTATION_PG_PORT:-55432}
DATA=${FORMSTATION_PG_DATA:-/tmp/formstation-pg}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -n "$BIN" ]] || { echo "pg_test_server: PostgreSQL is not installed" >&2; exit 1; }
as_pg() { if [[ $(id -u) -eq 0 ]]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
case "${1:-start}" in
  start)
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
      mkdir -p "$DATA"; [[ $(id -u) -eq 0 ]] && chown postgres: "$DATA"
      as_pg "$BIN/initdb -D $DATA -A trust -U postgres -E UTF8 --locale=C.UTF-8" >/dev/null
    fi
    if ! as_pg "$BIN/pg_ctl -D $DATA status" >/dev/null 2>&1; then
      as_pg "$BIN/pg_ctl -D $DATA -l $DATA/server.log -w -o \"-p $PORT -h 127.0.0.1 -k /tmp\" start" >/dev/null
    fi
    as_pg "$BIN/psql -h 127.0.0.1 -p $PORT -U postgres -tc \"SELECT 1 FROM pg_database WHERE datname='formstation_test'\"" | grep -q 1 \
      || as_pg "$BIN/createdb -h 127.0.0.1 -p $PORT -U postgres formstation_test"
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/formstation_test"
    ;;
  stop)
    as_pg "$BIN/pg_ctl -D $DATA -m fast stop" >/dev/null 2>&1 || true
    ;;
esac
