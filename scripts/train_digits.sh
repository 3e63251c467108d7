#!/usr/bin/env bash
# Rebuild the v2 comb-digit reader (ocr/models/reader_v2.onnx + reader_v2_heads.npz + reader_v2.json)
# from scratch:
#  1. simulate campaigns written by the reader's OWN writers (train pool of the 60k MNIST split,
#     training.digitdata.split60; never the held-out blocks every measurement uses) and run them
#     through the station: 1,500 forms printed with grey comb boxes (as the layouts were when the
#     first stages ran; a copy of the layout with its comb_ink line left out, found first through
#     FORMSTATION_LAYOUT_PATH) and 1,000 printed with the shipped drop-out combs, so that
#  2. training.pagecells can take their comb cells as the station read them, labelled by the truth;
#  3. train the ensemble's members on augmented MNIST 60k plus those page cells, two members side
#     by side (one core each), then join them into one ONNX graph (training.train_ensemble).
# PyTorch and onnx are installed for training only (the local torch wheel or the registry); the
# runtime needs neither. The shipped model's run (reader_v2.2): 1.2 + 1.2 + 3 + 1.5 epochs per
# member; stages 1-3 took 14 + 12 + 33 min per member on a machine shared with other jobs (load 6-7
# on 2 cores), stage 4 11-14 min per member (load 3-8), the drop-out campaign 15 min on a quiet
# machine. About 2 h 15 min in all on a quiet machine of that kind: over the 90 min the issue asks
# (stages 3 and 4 were added to weights that did not meet the accuracy targets). On 2026-12-06's
# machine, about twice as fast, the whole script ran in 62 min from a clean worktree, with other
# campaigns sharing the machine for about half of it (README "The reader rebuilt from scratch"). Outputs under bench-out/
# (ignored by git) except the model files. The shipped weights' page cells were drawn by the simulator
# before its pen kept filled loops (README "The simulator's pen keeps what the parent's pen filled");
# a rebuild now draws them with the pen as it is. The v1 models (digits_cnn.npz, digits.npz) are no
# longer rebuilt by this script.
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
mkdir -p bench-out/grey-layouts
sed 's/^comb_ink:/# comb_ink:/' layouts/ssc_application_v1.yaml > bench-out/grey-layouts/ssc_application_v1.yaml
FORMSTATION_LAYOUT_PATH=bench-out/grey-layouts $py bench/campaign.py --forms 1500 --seed 101 --writers train \
  --out bench-out/train-pages
FORMSTATION_LAYOUT_PATH=bench-out/grey-layouts $py -m training.pagecells \
  bench-out/train-pages/sim-1500-101-typical-train/sim bench-out/train-pages/run-ws --out bench-out/cells/train-1500-101.npz
$py bench/campaign.py --forms 1000 --seed 202 --writers train --out bench-out/train-drop
$py -m training.pagecells bench-out/train-drop/sim-1000-202-typical-train/sim bench-out/train-drop/run-ws \
  --out bench-out/cells/train-drop-1000-202.npz
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
# stage 4: 1.5 epochs from the stage-3 weights with the drop-out page cells added, 40,000 MNIST cells
p4=(--page-cells bench-out/cells/train-1500-101.npz bench-out/cells/train-drop-1000-202.npz --subsample 40000
    --init bench-out/members-p3 --work bench-out/members-p4 --epochs 1.5 --lr 7e-4)
te "${p4[@]}" --members m0 > bench-out/p4-m0.log 2>&1 &
te "${p4[@]}" --members m1 > bench-out/p4-m1.log 2>&1
wait
te "${p4[@]}" --members m2 > bench-out/p4-m2.log 2>&1
te "${p4[@]}" --assemble --version reader_v2.2
