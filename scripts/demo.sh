#!/usr/bin/env bash
# Install everything, run the whole job on the bundled demo batch, then serve the review station.
#   roster import -> print -> simulate filled & scanned paper -> ingest -> export -> review UI
# Set DEMO_NO_SERVE=1 to stop after the export. Safe to run again (starts from a fresh demo-out/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_THREAD_LIMIT=1
OUT=demo-out
rm -rf "$OUT"
WS="$OUT/station-data"
fs() { .venv/bin/formstation --workspace "$WS" "$@"; }

echo "== 1. roster import (bundled demo roster)"
fs roster import demo/roster.csv
echo "== 2. print pre-filled forms"
fs print --out "$OUT/print" --campaign-date 2026-09-01  # the demo roster's ages
echo "== 3. simulate parents filling in and a bulk scanner (typical profile)"
fs simulate "$OUT"/print/*.pdf --out "$OUT/scans" --seed 7 --profile typical
echo "== 4. ingest the scans"
fs ingest "$OUT/scans/scans"
echo "== 5. export"
fs export --out "$OUT/export"
echo "== accuracy against the simulator's truth"
.venv/bin/python -m simulate.evaluate --workspace "$WS" --truth "$OUT/scans/truth.jsonl"
echo "== 6. review station users"
FORMSTATION_PASSWORD=reviewer-demo fs users add reviewer --role reviewer
FORMSTATION_PASSWORD=supervisor-demo fs users add supervisor --role supervisor
FORMSTATION_PASSWORD=clerk-demo fs users add clerk --role clerk
echo "export: $OUT/export   scans: $OUT/scans   workspace: $WS"
if [[ "${DEMO_NO_SERVE:-}" != "1" ]]; then
  echo "== 7. review station on http://127.0.0.1:8501  (reviewer/reviewer-demo, supervisor/supervisor-demo; Ctrl-C stops)"
  fs review --port 8501
fi
