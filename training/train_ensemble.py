"""Train the v2 comb-cell reader, an ensemble of CNNs: `python -m training.train_ensemble [options]`.

Training-only dependencies: PyTorch (CPU) and `onnx` (for the export). The runtime never imports
either: the members' feature extractors are exported into one ONNX graph
(`ocr/models/reader_v2.onnx`: input `cells` (n, 1, 28, 28) float in [0, 1], outputs `features{k}`
(n, H_k), each member's last hidden layer) run by onnxruntime (`ocr.digits.OnnxReader`); each
member's output layer and calibration temperature are in `reader_v2_heads.npz` (applied in numpy,
so a campaign can refit them without torch), the figures in `reader_v2.json`.

Data (`training.train_digits.make_split`): the 60k MNIST training set minus its held-out blocks
(`digitdata.split60`) plus synthesised 'X', each glyph augmented `--copies` times offline through
a simulated comb cell read back by the runtime `normalize_cell`, plus cells cut by `training.pagecells`
from simulated campaigns of the training writers (`--page-cells`); every batch is augmented again
on the fly (`training.train_cnn.online_augment`). Each member has its own architecture and seed; its
temperature is fitted on the validation block (never trained on: augmented validation glyphs and
the validation writers' page cells). Deterministic for given seeds and inputs.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import time
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ocr.digits import CLASSES, ONNX_MODEL
from training.train_cnn import evaluate, online_augment, to_tensor
from training.train_digits import (
    augment_parallel,
    fit_temperature,
    make_split,
    page_cell_args,
    with_page_cells,
)

# member architectures: conv widths ('P' = 2x2 max pool), hidden width, seed
# (each 4-6 M multiply-adds per cell: the three read a 40-cell page in ~25 ms on one core)
MEMBERS = (
    ("m0", (16, "P", 32, 32, "P", 64, "P"), 128, 1),
    ("m1", (24, "P", 48, "P", 96, "P"), 160, 2),
    ("m2", (20, "P", 40, 40, "P", 80, "P"), 128, 3),
)
COPIES, VAL_COPIES = 2, 2
BATCH = 256
SMOOTHING = 0.05


class Member(nn.Module):
    """conv3x3-BN-ReLU blocks with max pools as `spec` says, dropout, fc-ReLU, fc -> 11 logits."""

    def __init__(self, spec: tuple, hidden: int, drop: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, size = 1, 28
        for item in spec:
            if item == "P":
                layers.append(nn.MaxPool2d(2))
                size //= 2
            else:
                layers += [nn.Conv2d(c, int(item), 3, padding=1, bias=False), nn.BatchNorm2d(int(item)), nn.ReLU()]
                c = int(item)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(drop), nn.Linear(c * size * size, hidden), nn.ReLU(),
                                  nn.Dropout(drop), nn.Linear(hidden, len(CLASSES)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Ensemble(nn.Module):
    """The members' feature extractors side by side, for export: (n, 1, 28, 28) -> one (n, H_k)
    output per member, its last hidden layer (after ReLU). The members' output layers and
    temperatures go to the heads file (`heads_of`), applied by the runtime in numpy: a campaign's
    reader can then be adapted by refitting the heads alone (no torch at the station)."""

    def __init__(self, members: list[Member]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(m.head[:-1](m.features(x)) for m in self.members)


def heads_of(members: list[Member], temperatures: list[float]) -> dict[str, np.ndarray]:
    """Each member's output layer as W{k} (H_k, 11), b{k} and its temperature T{k}."""
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for k, (m, t) in enumerate(zip(members, temperatures, strict=True)):
            fc = m.head[-1]
            out[f"W{k}"] = fc.weight.T.contiguous().numpy().astype(np.float32)
            out[f"b{k}"] = fc.bias.numpy().astype(np.float32)
            out[f"T{k}"] = np.float32(t)
    return out


@cache
def members_from_onnx(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Each member's weights (a state dict per name of `MEMBERS`) read back from a shipped reader:
    its ONNX graph (the batch norms folded into the convolutions' weights and biases) and its heads
    file. A batch norm becomes the identity plus the folded bias, so the member computes what the
    shipped reader does as long as its batch norms stay frozen (`train_member(freeze_bn=True)`).
    Read once per process, however many members start from it."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    convs = [(init[n.input[1]], init[n.input[2]]) for n in graph.node if n.op_type == "Conv"]
    with np.load(path.with_name(path.stem + "_heads.npz")) as d:
        heads = {k: torch.from_numpy(d[k].copy()) for k in d.files}
    out: dict[str, dict[str, torch.Tensor]] = {}
    for k, (name, spec, hidden, _) in enumerate(MEMBERS):
        net = Member(spec, hidden)
        state = net.state_dict()
        layers = [m for m in net.features if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]
        pre = {id(m): p for p, m in net.named_modules()}
        for conv, bn in zip(layers[0::2], layers[1::2], strict=True):
            w, b = convs.pop(0)
            if w.shape != conv.weight.shape:
                raise ValueError(f"{path}: member {name} does not match its architecture in MEMBERS")
            state[f"{pre[id(conv)]}.weight"] = w
            bp = pre[id(bn)]
            state.update({f"{bp}.weight": torch.ones_like(b), f"{bp}.bias": b, f"{bp}.running_mean": torch.zeros_like(b),
                          f"{bp}.running_var": torch.full_like(b, 1.0 - bn.eps)})
        state["head.2.weight"], state["head.2.bias"] = init[f"members.{k}.head.2.weight"], init[f"members.{k}.head.2.bias"]
        state["head.5.weight"], state["head.5.bias"] = heads[f"W{k}"].T.contiguous(), heads[f"b{k}"]
        out[name] = state
    return out


def train_member(spec: tuple, hidden: int, seed: int, epochs: float, xt: torch.Tensor, yt: torch.Tensor,
                 xvt: torch.Tensor, yv: np.ndarray, lr: float = 3e-3, init: dict | None = None,
                 freeze_bn: bool = False) -> Member:
    """One member, OneCycle AdamW over `epochs` (may be fractional) passes of the cells; from the
    weights `init` when given (a second stage: the page cells added to what it learned). With
    `freeze_bn` the batch norms keep their statistics (a member read back from ONNX, whose batch
    norms are folded: see `members_from_onnx`) and only their scale and shift learn."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + (1000 if init else 0))
    net = Member(spec, hidden)
    if init is not None:
        net.load_state_dict(init)
    steps_per_epoch = math.ceil(len(xt) / BATCH)
    steps = max(1, int(epochs * steps_per_epoch))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    step, t0 = 0, time.time()
    while step < steps:
        net.train()
        if freeze_bn:
            for m in net.features:
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        order = torch.randperm(len(xt), generator=g)
        total, seen = 0.0, 0
        for i in range(0, len(order), BATCH):
            if step >= steps:
                break
            idx = order[i : i + BATCH]
            loss = F.cross_entropy(net(online_augment(xt[idx], g)), yt[idx], label_smoothing=SMOOTHING)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            if step % 200 == 0:
                print(f"  step {step}/{steps} loss {total / seen:.4f} ({time.time() - t0:.0f}s)", flush=True)
        acc = float((evaluate(net, xvt).argmax(axis=1) == yv).mean())
        print(f"  step {step}/{steps} loss {total / max(seen, 1):.4f} val top1 {acc:.4f} "
              f"({time.time() - t0:.0f}s)", flush=True)
    return net.eval()


def build_cells(seed: int, copies: int, workers: int, cache: Path | None) -> tuple[np.ndarray, ...]:
    """Offline-augmented training cells (plus the clean glyphs) and validation cells."""
    key = np.array([seed, copies, 60000])
    if cache is not None and cache.exists():
        with np.load(cache) as d:
            if np.array_equal(d["key"], key):
                return d["x"], d["y"], d["xv"], d["yv"]
    split = make_split(seed)
    x = np.concatenate([augment_parallel(split.train_x, seed, 1, copies, workers), split.train_x])
    y = np.concatenate([np.repeat(split.train_y, copies), split.train_y])
    xv = augment_parallel(split.val_x, seed, 2, VAL_COPIES, workers)
    yv = np.repeat(split.val_y, VAL_COPIES)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, x=x, y=y, xv=xv, yv=yv, key=key)
    return x, y, xv, yv


def export_onnx(ens: Ensemble, path: Path) -> None:
    """Write the members' feature extractors as one ONNX graph (input `cells`, outputs
    `features{k}`) with a dynamic batch axis."""
    names = [f"features{k}" for k in range(len(ens.members))]
    buf = io.BytesIO()
    torch.onnx.export(ens.eval(), (torch.zeros(1, 1, 28, 28),), buf, dynamo=False, input_names=["cells"],
                      output_names=names, dynamic_axes={"cells": {0: "n"}, **{n: {0: "n"} for n in names}},
                      opset_version=17)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def _top1(probs: np.ndarray, y: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == y).mean()) if len(y) else float("nan")


def load_cells(copies: int, workers: int, cache: Path | None, page_cells: list[Path],
               page_val: list[Path], subsample: int = 0) -> tuple[np.ndarray, ...]:
    """The training and validation cells (see `build_cells`), `subsample` of the augmented MNIST
    training cells drawn at random when given (a fine-tuning stage), plus the page cells."""
    x, y, xv, yv = build_cells(0, copies, workers, cache)
    if 0 < subsample < len(x):
        pick = np.sort(np.random.default_rng(7).choice(len(x), subsample, replace=False))
        x, y = x[pick], y[pick]
    return with_page_cells(x, y, xv, yv, page_cells, page_val, time.time())


def train_one(name: str, work: Path, epochs: float, cells: tuple[np.ndarray, ...], threads: int,
              init: Path | None = None, lr: float = 3e-3, freeze_bn: bool = False) -> None:
    """Train member `name` (from its weights in `init` when given: a folder of trained members, or
    a shipped reader's .onnx, read by `members_from_onnx`), fit its temperature on the validation
    cells, save it under `work`."""
    torch.set_num_threads(max(1, threads))
    x, y, xv, yv, _, _ = cells
    _, spec, hidden, seed = next(m for m in MEMBERS if m[0] == name)
    print(f"member {name} {spec} hidden {hidden} seed {seed}: {len(x)} cells, {epochs} epochs", flush=True)
    tm = time.time()
    xt, yt, xvt = to_tensor(x), torch.from_numpy(y.astype(np.int64)), to_tensor(xv)
    if init is None:
        start = None
    elif init.suffix == ".onnx":
        start = members_from_onnx(init)[name]
        freeze_bn = True  # its batch norms are folded: trained as batch norms, they would undo that
    else:
        start = torch.load(init / f"{name}.pt", weights_only=False)["state"]
    net = train_member(spec, hidden, seed, epochs, xt, yt, xvt, yv, lr, start, freeze_bn)
    lv = evaluate(net, xvt)
    t = fit_temperature(lv, yv)
    fig = {"spec": list(map(str, spec)), "hidden": hidden, "seed": seed, "temperature": round(t, 4),
           "val_top1": round(_top1(lv, yv), 5), "epochs": epochs,
           "stage": "fine-tuned" if init else "from scratch", "lr": lr, "frozen_bn": freeze_bn, "minutes": round((time.time() - tm) / 60, 1)}
    work.mkdir(parents=True, exist_ok=True)
    torch.save({"state": net.state_dict(), "figures": fig}, work / f"{name}.pt")
    print(f"  {name}: {json.dumps(fig)}", flush=True)


def assemble(out: Path, work: Path, cells: tuple[np.ndarray, ...], copies: int, version: str = "") -> None:
    """Join the trained members into one ONNX graph and write the figures beside it; `version`
    (default: the file's stem) is the name every field reading records."""
    x, y, xv, yv, pvx, pvy = cells
    nets, temps, figures = [], [], {"members": {}}
    for name, spec, hidden, _ in MEMBERS:
        saved = torch.load(work / f"{name}.pt", weights_only=False)
        net = Member(spec, hidden)
        net.load_state_dict(saved["state"])
        nets.append(net.eval())
        temps.append(float(saved["figures"]["temperature"]))
        figures["members"][name] = saved["figures"]
    ens = Ensemble(nets)
    heads = heads_of(nets, temps)
    export_onnx(ens, out)
    np.savez(out.with_name(out.stem + "_heads.npz"), **heads)
    from ocr.digits import OnnxReader

    reader = OnnxReader(out)
    p = reader.predict_proba(xv)
    figures["val_top1"] = round(_top1(p, yv), 5)
    if len(pvx):
        figures["val_page_cells_top1"] = round(_top1(reader.predict_proba(pvx), pvy), 5)
    figures.update({"version": version or out.stem, "copies": copies, "train_cells": int(len(x)), "val_cells": int(len(xv)),
                    "classes": CLASSES})
    out.with_suffix(".json").write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(figures, indent=1))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ONNX_MODEL)
    ap.add_argument("--work", type=Path, default=Path("bench-out/members"), help="folder of the trained members")
    ap.add_argument("--epochs", type=float, default=2.5, help="passes over the training cells per member")
    ap.add_argument("--copies", type=int, default=COPIES, help="offline augmented copies per glyph")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads per member")
    ap.add_argument("--cache", type=Path, default=None, help="npz of the offline-augmented cells (written if missing)")
    ap.add_argument("--members", nargs="*", default=None,
                    help="train these members, then stop (none: only build the --cache); without "
                         "--members all are trained and assembled")
    ap.add_argument("--assemble", action="store_true", help="only join the members already trained in --work")
    ap.add_argument("--init", type=Path, default=None, help="start each member from its weights in this folder, "
                    "or in this shipped reader (.onnx beside its _heads.npz)")
    ap.add_argument("--freeze-bn", action="store_true", help="keep the batch norms' statistics (always from an .onnx)")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    ap.add_argument("--subsample", type=int, default=0, help="train on this many of the augmented MNIST cells "
                    "(drawn at random) beside the page cells")
    ap.add_argument("--version", default="", help="the reader's version name (default: the --out file's stem)")
    page_cell_args(ap)
    args = ap.parse_args(argv)
    cells = load_cells(args.copies, args.workers, args.cache, args.page_cells, args.page_val, args.subsample)
    if not args.assemble:
        for name in [m[0] for m in MEMBERS] if args.members is None else args.members:
            train_one(name, args.work, args.epochs, cells, args.threads, args.init, args.lr, args.freeze_bn)
    if args.assemble or args.members is None:
        assemble(args.out, args.work, cells, args.copies, args.version)


if __name__ == "__main__":
    main()
