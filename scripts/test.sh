#!/usr/bin/env bash
# Install everything (including test-only packages) and run the checks: ruff, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export OMP_THREAD_LIMIT=1
# a real PostgreSQL server on 127.0.0.1 for the store tests (SQLite runs as well)
FORMSTATION_TEST_PG_URL=$(bash scripts/pg_test_server.sh start)
export FORMSTATION_TEST_PG_URL
trap 'bash scripts/pg_test_server.sh stop' EXIT  # the test server does not outlive the test run
.venv/bin/ruff check .
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then echo "test: pytest collected no tests" >&2; exit 1; fi
exit $rc
