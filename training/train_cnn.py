"""Train the comb-cell CNN: `python -m training.train_cnn [--out PATH] [--seed N] [--epochs N]`.

Training-only dependency: PyTorch (CPU). The runtime never imports torch: the trained net is
exported to a plain-numpy npz (`ocr/models/digits_cnn.npz`) that `ocr.digits.DigitClassifier`
runs with numpy.

Data (the same split as `training.train_digits`, reused from it): the non-held-out MNIST samples plus
synthesised 'X'; the last `VAL_PER_CLASS` samples of each class form a validation block that is
never trained on and is used to fit the softmax temperature. The MNIST held-out block is never
touched. Each training glyph is augmented `--copies` times offline through `digitdata.augment`
(distortion, simulated comb cell with box lines / neighbours / noise / JPEG, read back through the
runtime `normalize_cell`), and every batch is augmented again on the fly (affine, elastic, stroke
width, low-resolution blur, box-line remnants). With `--page-cells` / `--page-val`, cells cut by
`training.pagecells` from simulated campaigns written by the training / validation writers are added
to the training / validation cells. Deterministic for a given seed and inputs:
`scripts/train_digits.sh` rebuilds the shipped `ocr/models/digits_cnn.npz` (with page cells of
campaigns 101 / 102, 1,500 / 300 forms) from scratch.

Options not used by the shipped model: `--pen-copies N` adds N copies per glyph redrawn with a
uniform round pen (`restroke`: skeleton + nib, like a ballpoint) before augmentation, and the same
kind in the validation block (e.g. `--copies 12 --pen-copies 6`: on simulator-style pen digits of
the validation writers cell top-1 96.6 % -> 97.3 %, and fewer sure-but-wrong cells; on
`bench/digits_accuracy.py` load_digits 97.4 % -> 96.8 %, the rest within 0.2 pt);
`--smoothing` (label smoothing, default 0.05), `--mixup A`.

Net: conv3x3(1->C1)+BN+ReLU, maxpool 2, conv3x3(C1->C2)+BN+ReLU, maxpool 2, fc(C2*49->H)+ReLU,
fc(H->11). Batch norm is folded into the convolutions at export.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from skimage.morphology import skeletonize
from torch import nn

from ocr.digits import CLASSES, CNN_MODEL, DigitClassifier, frame_glyph
from training.train_digits import (
    augment_parallel,
    fit_temperature,
    make_split,
    page_cell_args,
    report_and_save,
    with_page_cells,
)

CHANNELS = (32, 64)
HIDDEN = 128
COPIES, PEN_COPIES, VAL_COPIES = 16, 0, 3  # the shipped model; see --pen-copies
BATCH = 128
SMOOTHING = 0.05  # label smoothing
MIXUP = 0.0  # mixup Beta(a, a) parameter; 0 = off


class Net(nn.Module):
    """conv-BN-ReLU-pool blocks, then one hidden fully connected layer."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS, hidden: int = HIDDEN, drop: float = 0.3) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        c_in, size = 1, 28
        for c in channels:
            self.convs.append(nn.Conv2d(c_in, c, 3, padding=1, bias=False))
            self.bns.append(nn.BatchNorm2d(c))
            c_in, size = c, size // 2
        self.fc0 = nn.Linear(c_in * size * size, hidden)
        self.fc1 = nn.Linear(hidden, len(CLASSES))
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in zip(self.convs, self.bns, strict=True):
            x = F.relu(F.max_pool2d(bn(conv(x)), 2))
        x = self.drop(torch.flatten(x, 1))
        return self.fc1(self.drop(F.relu(self.fc0(x))))


def export(net: Net, temperature: float) -> dict[str, np.ndarray]:
    """Plain-numpy parameters: `conv{i}_W` (out, in, 3, 3) and `conv{i}_b` with batch norm folded
    in, `fc{i}_W` (in, out) (fc0 rows in torch's channel-major flatten order) and `fc{i}_b`."""
    params: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for i, (conv, bn) in enumerate(zip(net.convs, net.bns, strict=True)):
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            params[f"conv{i}_W"] = (conv.weight * s[:, None, None, None]).numpy().astype(np.float32)
            params[f"conv{i}_b"] = (bn.bias - bn.running_mean * s).numpy().astype(np.float32)
        for i, fc in enumerate((net.fc0, net.fc1)):
            params[f"fc{i}_W"] = fc.weight.T.contiguous().numpy().astype(np.float32)
            params[f"fc{i}_b"] = fc.bias.numpy().astype(np.float32)
    params["temperature"] = np.float32(temperature)
    return params


# ---------------------------------------------------------------------------------------------
# On-the-fly augmentation of normalised 28x28 cells (float (B, 1, 28, 28) in [0, 1])
# ---------------------------------------------------------------------------------------------


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask[:, None, None, None], a, b)


def online_augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random stroke width, affine (rotation, slant, scale, shift), elastic distortion, blur by
    resampling at low resolution and box-line remnants; ~25 % of the cells are left as they are.
    Each result is rescaled to peak 1 like `normalize_cell` output."""
    n = x.shape[0]
    keep = torch.rand(n, generator=g) < 0.25
    out = x
    # stroke width: partial dilation / erosion
    r = torch.rand(n, generator=g)
    a = _uniform(g, n, 0.4, 1.0)[:, None, None, None]
    dil = F.max_pool2d(out, 3, 1, 1)
    ero = -F.max_pool2d(-out, 3, 1, 1)
    out = _where(r < 0.15, out + a * (dil - out), out)
    out = _where((r >= 0.15) & (r < 0.27), out + 0.7 * a * (ero - out), out)
    # affine + elastic in one resampling
    rot = torch.deg2rad(torch.randn(n, generator=g).clamp(-2.5, 2.5) * 6.0)
    shear = torch.randn(n, generator=g).clamp(-2.5, 2.5) * 0.1
    sx, sy = _uniform(g, n, 0.88, 1.1), _uniform(g, n, 0.9, 1.1)
    tx, ty = _uniform(g, n, -1.5, 1.5) * (2 / 28), _uniform(g, n, -1.5, 1.5) * (2 / 28)
    cos, sin = torch.cos(rot), torch.sin(rot)
    theta = torch.stack([
        torch.stack([cos / sx, (-sin + shear * cos) / sx, tx], 1),
        torch.stack([sin / sy, (cos + shear * sin) / sy, ty], 1),
    ], 1)
    grid = F.affine_grid(theta, list(out.shape), align_corners=False)
    amp = _uniform(g, n, 0.5, 1.6) * (2 / 28) * (torch.rand(n, generator=g) < 0.6)
    field = torch.randn(n, 2, 4, 4, generator=g)
    field = F.interpolate(field, size=(28, 28), mode="bicubic", align_corners=True)
    field = field / field.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    grid = grid + (field * amp[:, None, None, None]).permute(0, 2, 3, 1)
    out = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # low resolution (thick blurry strokes of a coarse scan / small writing)
    low = torch.rand(n, generator=g) < 0.2
    size = int(torch.randint(10, 21, (1,), generator=g))
    coarse = F.interpolate(F.interpolate(out, size=(size, size), mode="area"), size=(28, 28),
                           mode="bilinear", align_corners=False)
    out = _where(low, coarse, out)
    # box-line remnant: a faint partial line along one border
    rem = torch.rand(n, generator=g) < 0.08
    lines = torch.zeros_like(out)
    pos = torch.randint(0, 3, (n,), generator=g)
    side = torch.randint(0, 4, (n,), generator=g)
    start = torch.randint(0, 14, (n,), generator=g)
    length = torch.randint(4, 15, (n,), generator=g)
    level = _uniform(g, n, 0.2, 0.8)
    for i in torch.nonzero(rem).flatten().tolist():
        p = int(pos[i]) if int(side[i]) % 2 == 0 else 27 - int(pos[i])
        s0, s1 = int(start[i]), int(start[i] + length[i])
        if int(side[i]) < 2:
            lines[i, 0, p, s0:s1] = level[i]
        else:
            lines[i, 0, s0:s1, p] = level[i]
    out = torch.maximum(out, lines)
    out = out / out.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    return _where(keep, x, out.clamp(0, 1))


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def restroke(img28: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The glyph redrawn with a uniform round pen (ballpoint / gel pen rather than MNIST's
    variable stroke): skeleton at 4x, a nib of 5-16 % of the glyph height, soft edge, MNIST framing."""
    g = cv2.resize(img28.astype(np.float32), (112, 112), interpolation=cv2.INTER_CUBIC)
    sk = skeletonize(g > 0.4 * max(float(g.max()), 1e-6)).astype(np.uint8) * 255
    ys = np.flatnonzero(sk.any(axis=1))
    if ys.size == 0:
        return img28
    nib = max(2, int(round((ys[-1] - ys[0] + 1) * rng.uniform(0.05, 0.16))))
    pen = cv2.dilate(sk, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (nib, nib)))
    out = frame_glyph(cv2.GaussianBlur(pen, (0, 0), rng.uniform(0.8, 2.0)))
    return img28 if out is None else out


def restroke_many(images: np.ndarray, seed: int, tag: int, copies: int, start: int = 0) -> np.ndarray:
    """`copies` restroked versions of each image, (n * copies, 28, 28), image-major order; one
    generator per (seed, tag, image index, copy) like `digitdata.augment_many`."""
    out = np.empty((len(images) * copies, 28, 28), np.uint8)
    for i, img in enumerate(images):
        for c in range(copies):
            out[i * copies + c] = restroke(img, np.random.default_rng([seed, tag, start + i, c]))
    return out


def restroke_parallel(images: np.ndarray, seed: int, tag: int, copies: int, workers: int) -> np.ndarray:
    """`restroke_many` split over `workers` processes; same result as one process."""
    bounds = np.linspace(0, len(images), workers * 4 + 1).astype(int)
    jobs = [(images[a:b], seed, tag, copies, int(a)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if workers <= 1:
        return np.concatenate([restroke_many(*j) for j in jobs])
    with ProcessPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(restroke_many, *zip(*jobs, strict=True))))


def build_data(seed: int, copies: int, pen_copies: int, workers: int, cache: Path | None) -> tuple[np.ndarray, ...]:
    """Augmented training cells (`copies` per glyph, plus `pen_copies` restroked then augmented,
    plus the clean glyphs) and augmented validation cells (`VAL_COPIES` per glyph, and as many
    restroked ones when `pen_copies` > 0)."""
    key = np.array([seed, copies, pen_copies])
    if cache is not None and cache.exists():
        with np.load(cache) as d:
            if not np.array_equal(d["key"], key):
                raise SystemExit(f"{cache} holds (seed, copies, pen copies) {d['key'].tolist()}")
            return d["x"], d["y"], d["xv"], d["yv"]
    split = make_split(seed)
    x = [augment_parallel(split.train_x, seed, 1, copies, workers)]
    y = [np.repeat(split.train_y, copies)]
    xv = [augment_parallel(split.val_x, seed, 2, VAL_COPIES, workers)]
    yv = [np.repeat(split.val_y, VAL_COPIES)]
    if pen_copies > 0:
        x.append(augment_parallel(restroke_parallel(split.train_x, seed, 3, pen_copies, workers), seed, 4, 1, workers))
        y.append(np.repeat(split.train_y, pen_copies))
        xv.append(augment_parallel(restroke_parallel(split.val_x, seed, 5, VAL_COPIES, workers), seed, 6, 1, workers))
        yv.append(np.repeat(split.val_y, VAL_COPIES))
    x, y = np.concatenate([*x, split.train_x]), np.concatenate([*y, split.train_y])
    xv, yv = np.concatenate(xv), np.concatenate(yv)
    if cache is not None:
        np.savez(cache, x=x, y=y, xv=xv, yv=yv, key=key)
    return x, y, xv, yv


def to_tensor(cells: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(cells.astype(np.float32) / 255.0)[:, None]


def evaluate(net: Net, x: torch.Tensor) -> np.ndarray:
    """Logits (float64 numpy) in eval mode, in chunks."""
    net.eval()
    with torch.no_grad():
        out = torch.cat([net(x[i : i + 1024].contiguous(memory_format=torch.channels_last))
                         for i in range(0, len(x), 1024)])
    return out.numpy().astype(np.float64)


def train(out: Path, seed: int, epochs: int, copies: int, pen_copies: int, workers: int, cache: Path | None,
          channels: tuple[int, ...] = CHANNELS, hidden: int = HIDDEN, smoothing: float = SMOOTHING,
          mixup: float = MIXUP, page_cells: list[Path] = (), page_val: list[Path] = ()) -> None:
    """Augment, train, calibrate, export the npz model and print figures."""
    t0 = time.time()
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    x, y, xv, yv = build_data(seed, copies, pen_copies, workers, cache)
    x, y, xv, yv, pvx, pvy = with_page_cells(x, y, xv, yv, page_cells, page_val, t0)
    xt, yt, xvt = to_tensor(x), torch.from_numpy(y.astype(np.int64)), to_tensor(xv)
    g = torch.Generator().manual_seed(seed)
    mix_rng = np.random.default_rng([seed, 99])
    net = Net(channels, hidden).to(memory_format=torch.channels_last)
    steps = epochs * math.ceil(len(xt) / BATCH)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(xt), generator=g)
        total, t_ep = 0.0, time.time()
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            xb = online_augment(xt[idx], g)
            if mixup > 0:  # mixup: a blend of two cells is labelled with the same blend
                lam = float(mix_rng.beta(mixup, mixup))
                perm = torch.randperm(len(idx), generator=g)
                xb = lam * xb + (1 - lam) * xb[perm]
                pred = net(xb.contiguous(memory_format=torch.channels_last))
                loss = (lam * F.cross_entropy(pred, yt[idx], label_smoothing=smoothing)
                        + (1 - lam) * F.cross_entropy(pred, yt[idx][perm], label_smoothing=smoothing))
            else:
                pred = net(xb.contiguous(memory_format=torch.channels_last))
                loss = F.cross_entropy(pred, yt[idx], label_smoothing=smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        acc = float((evaluate(net, xvt).argmax(axis=1) == yv).mean())
        print(f"epoch {epoch + 1:>2}/{epochs} loss {total / len(xt):.4f} val top1 {acc:.4f} "
              f"({time.time() - t_ep:.0f}s)", flush=True)
    logits_v = evaluate(net, xvt)
    temperature = fit_temperature(logits_v, yv)
    params = export(net, temperature)
    model = DigitClassifier(params)
    print(f"trained in {time.time() - t0:.0f}s; temperature {temperature:.3f}")
    check = np.abs(model.logits(xv[:256]) - logits_v[:256]).max()
    print(f"numpy vs torch max |logit diff| {check:.2e}")
    report_and_save(out, params, x, y, xv, yv, pvx, pvy, 20)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=CNN_MODEL)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--copies", type=int, default=COPIES, help="offline augmented copies per glyph")
    ap.add_argument("--pen-copies", type=int, default=PEN_COPIES,
                    help="offline copies per glyph redrawn with a uniform pen, then augmented")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--cache", type=Path, default=None,
                    help="npz to reuse the offline-augmented cells from (written if missing)")
    ap.add_argument("--channels", type=int, nargs="+", default=list(CHANNELS), help="conv widths")
    ap.add_argument("--hidden", type=int, default=HIDDEN, help="width of the hidden fc layer")
    ap.add_argument("--smoothing", type=float, default=SMOOTHING, help="label smoothing")
    ap.add_argument("--mixup", type=float, default=MIXUP, help="mixup Beta(a, a) parameter (0: off)")
    page_cell_args(ap)
    args = ap.parse_args(argv)
    train(args.out, args.seed, args.epochs, args.copies, args.pen_copies, args.workers, args.cache,
          tuple(args.channels), args.hidden, args.smoothing, args.mixup, args.page_cells, args.page_val)


if __name__ == "__main__":
    main()
