#!/usr/bin/env bash
# Rebuild the v2 comb-digit reader (ocr/models/reader_v2.onnx + reader_v2.json) from scratch:
#  1. simulate two campaigns written by the reader's OWN writers (train pool, val pool of the 60k
#     MNIST split, training.digitdata.split60; never the held-out blocks every measurement uses) and
#     run them through the station, so that
#  2. training.pagecells can cut their comb cells as the station sees them, labelled by the truth;
#  3. train the ensemble's members on augmented MNIST 60k plus those page cells, two members side
#     by side (one core each), then join them into one ONNX graph (training.train_ensemble).
# PyTorch and onnx are installed for training only (the local torch wheel or the registry); the
# runtime needs neither. The shipped model's run (reader_v2.1): 1.2 + 1.2 + 3 epochs per member,
# 14 + 12 + 33 min each with two members side by side on a machine shared with other jobs (load 6-7
# on 2 cores); about 75 min for stages 1-2 on a quieter machine, stage 3 adds 30-60. Outputs under bench-out/ (ignored by git) except
# the model files. The v1 models (digits_cnn.npz, digits.npz) are no longer rebuilt by this script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  wheel=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -1 || true)
  .venv/bin/pip install -q "${wheel:-torch==2.13.0}"
fi
.venv/bin/python -c "import onnx" 2>/dev/null || .venv/bin/pip install -q "onnx==1.23.2"
export OMP_THREAD_LIMIT=1
py=.venv/bin/python
$py bench/campaign.py --forms 1500 --seed 101 --writers train --out bench-out/train-pages
$py -m training.pagecells bench-out/train-pages/sim-1500-101-typical-train/sim bench-out/train-pages/run-ws \
  --out bench-out/cells/train-1500-101.npz
te() { $py -u -m training.train_ensemble --cache bench-out/cells/aug-60k-c2.npz --threads 1 "$@"; }
te --members   # the offline-augmented MNIST cells, once (cached)
# stage 1: each member from scratch on the augmented MNIST cells (two side by side, one core each)
te --work bench-out/members-p1 --epochs 1.2 --members m0 > bench-out/p1-m0.log 2>&1 &
te --work bench-out/members-p1 --epochs 1.2 --members m1 > bench-out/p1-m1.log 2>&1
wait
te --work bench-out/members-p1 --epochs 1.2 --members m2 > bench-out/p1-m2.log 2>&1 &
# stage 2: fine-tuned on the page cells beside 60,000 of the MNIST cells
p2=(--page-cells bench-out/cells/train-1500-101.npz --subsample 60000 --init bench-out/members-p1
    --work bench-out/members --epochs 1.2 --lr 1.5e-3)
te "${p2[@]}" --members m0 > bench-out/p2-m0.log 2>&1
wait
te "${p2[@]}" --members m1 > bench-out/p2-m1.log 2>&1 &
te "${p2[@]}" --members m2 > bench-out/p2-m2.log 2>&1
wait
# stage 3: three more epochs on the same cells at a lower peak rate, from the stage-2 weights
p3=(--page-cells bench-out/cells/train-1500-101.npz --subsample 60000 --init bench-out/members
    --work bench-out/members-p3 --epochs 3 --lr 1e-3)
te "${p3[@]}" --members m0 > bench-out/p3-m0.log 2>&1 &
te "${p3[@]}" --members m1 > bench-out/p3-m1.log 2>&1
wait
te "${p3[@]}" --members m2 > bench-out/p3-m2.log 2>&1
te "${p3[@]}" --assemble --version reader_v2.1
