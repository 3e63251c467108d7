#!/usr/bin/env bash
# Rebuild the two comb-digit models (ocr/models/digits_cnn.npz, ocr/models/digits.npz) from scratch:
#  1. simulate two campaigns written by the readers' OWN writers (train pool, val pool; never the
#     held-out block every measurement uses) and run them through the station, so that
#  2. ocr.pagecells can cut their comb cells as the station sees them, labelled by the truth;
#  3. train the CNN and the feature MLP on augmented MNIST plus those page cells (PyTorch for the
#     CNN only: installed here from the local wheel or the registry; the runtime never needs it).
# About 40 min on 2 cores. Outputs under bench-out/ (ignored by git) except the two model files.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  wheel=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -1 || true)
  .venv/bin/pip install -q "${wheel:-torch==2.13.0}"
fi
export OMP_THREAD_LIMIT=1
py=.venv/bin/python
$py bench/campaign.py --forms 1500 --seed 101 --writers train --out bench-out/train-pages
$py -m ocr.pagecells bench-out/train-pages/sim-1500-101-typical-train/sim bench-out/train-pages/run-ws \
  --out bench-out/cells/train-1500-101.npz
$py bench/campaign.py --forms 300 --seed 102 --writers val --out bench-out/val-pages
$py -m ocr.pagecells bench-out/val-pages/sim-300-102-typical-val/sim bench-out/val-pages/run-ws \
  --out bench-out/cells/val-300-102.npz
pages=(--page-cells bench-out/cells/train-1500-101.npz --page-val bench-out/cells/val-300-102.npz)
$py -m ocr.train_cnn "${pages[@]}"
$py -m ocr.train_digits "${pages[@]}"
