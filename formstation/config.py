"""Station settings kept in the workspace (`station.toml`): confidence thresholds, campaign date.

Supervisors edit them in the review UI; the reading stage reads them. Missing file = defaults.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

CONFIG_NAME = "station.toml"
KINDS = ("digits", "text", "checkbox", "signature", "photo", "attachment")
# digits: the averaged comb reader is still over-sure on writing unlike its training (at 0.95,
# 2.3 % of simulated fields it accepted were wrong; at 0.98, 1.2 %): doubt goes to a reviewer
# digit fields with a threshold of their own, picked from risk-coverage curves on held-out page
# fields (bench/risk_coverage.py: the lowest threshold at which at most 0.5 % of the fields it
# accepts are wrong); `digits` stays the threshold of any other comb field
FIELD_KEYS = ("phone", "guardian_phone", "guardian_id", "corrected_id")
DEFAULT_THRESHOLDS = {"digits": 0.98, "text": 0.80, "checkbox": 0.90, "signature": 0.90,
                      "photo": 0.90, "attachment": 0.90,
                      # v2 reader: the more cautious of the pick on 500 forms of the calib writers
                      # (seed 31) and the check on 500 of the heldout writers (seed 23), field by
                      # field: phone 0.934 / 0.987, guardian phone 0.982 / 0.974, IDs pooled 0.983
                      # / 0.985 (one guardian ID misread at 0.9999 no threshold removes), rounded up.
                      # Reader v2.2, drop-out print: phone 0.99 -> 0.986, the pick on 1,000 forms of
                      # the calib writers (seed 37: 0.9856), checked field by field on the heldout
                      # writers: 1 of 267 accepted wrong (1,000 forms, seed 41), 0 of 84 (300, seed
                      # 23), 0 of 112 on 500 forms printed with grey combs (at 0.98 there: 1 of 163,
                      # 0.6 %). Guardian phone stays: at 0.98, 2 of 147 wrong on those grey forms
                      "phone": 0.986, "guardian_phone": 0.985, "guardian_id": 0.99, "corrected_id": 0.99}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Config:
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    alignment_residual_mm: float = 1.0
    # a form on which more than this share of the inked comb boxes is doubtful was written unlike
    # the writers the reader was measured on (0.30, v2 reader: more than on 99 in 100 forms of the
    # heldout writers, 97 in 100 of the calib writers, medians 14 % / 10 %; the `other` writers'
    # median is 45 %): its surely read numbers go to a reviewer too (ocr.rules UNUSUAL_HANDWRITING)
    unusual_writing_share: float = 0.30
    # the same over a class's forms pooled: a class whose boxes are doubtful this often was written
    # unlike the writers the thresholds were picked on, even where a form holds too few boxes to
    # tell alone (0.20: every class of the calib and heldout writers pools 0.07-0.13, 71 classes of
    # 40 forms; writers who print their digits like type 0.24-0.32, scikit-learn's 0.36-0.42)
    unusual_class_share: float = 0.20
    # ingest and watch adapt the reader to the campaign's handwriting (ocr.learning) after every this
    # many newly reviewed forms; 0: only when asked (`formstation reader adapt`, Adapt now). The gate
    # keeps a candidate out unless it reads held-out forms better and accepts at least as many fields
    # of the forms no reviewer opened (ocr.adapt)
    adapt_every: int = 200
    # the day the applicants' ages are computed on (under 6: no photo; under 16: a guardian);
    # None: the day each form was printed (ocr.rules), for a campaign nobody set a date for
    campaign_date: date | None = None


def _parse(raw: dict, path: Path) -> Config:
    cfg = Config()
    th = dict(cfg.thresholds)
    for k, v in (raw.get("thresholds") or {}).items():
        if k == "alignment_residual_mm":
            cfg = replace(cfg, alignment_residual_mm=float(v))
            continue
        if k in ("unusual_writing_share", "unusual_class_share"):
            if not 0.0 < float(v) <= 1.0:
                raise ConfigError(f"{path}: thresholds.{k}: expected a share above 0, at most 1")
            cfg = replace(cfg, **{k: float(v)})
            continue
        if k not in (*KINDS, *FIELD_KEYS) or not (0.0 <= float(v) <= 1.0):
            raise ConfigError(f"{path}: thresholds.{k}: expected one of {', '.join((*KINDS, *FIELD_KEYS))} "
                              "with a value 0..1")
        th[k] = float(v)
    cd = raw.get("campaign_date", cfg.campaign_date)
    if isinstance(cd, str):
        try:
            cd = date.fromisoformat(cd)
        except ValueError:
            raise ConfigError(f"{path}: campaign_date: expected YYYY-MM-DD, got {cd!r}") from None
    every = (raw.get("reader") or {}).get("adapt_every", cfg.adapt_every)
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ConfigError(f"{path}: reader.adapt_every: expected a whole number of forms, 0 or more, got {every!r}")
    return replace(cfg, thresholds=th, campaign_date=cd, adapt_every=every)


def load_config(workspace: str | Path) -> Config:
    path = Path(workspace) / CONFIG_NAME
    if not path.is_file():
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    return _parse(raw, path)


def save_config(workspace: str | Path, cfg: Config) -> Path:
    path = Path(workspace) / CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"campaign_date = {cfg.campaign_date.isoformat()}", ""] if cfg.campaign_date else []
    lines.append("[thresholds]")
    lines += [f"{k} = {cfg.thresholds[k]:.3f}" for k in KINDS]
    lines += [f"{k} = {cfg.thresholds[k]:.4f}" for k in FIELD_KEYS]
    lines.append(f"alignment_residual_mm = {cfg.alignment_residual_mm:.3f}")
    lines.append(f"unusual_writing_share = {cfg.unusual_writing_share:.3f}")
    lines.append(f"unusual_class_share = {cfg.unusual_class_share:.3f}")
    lines += ["", "[reader]", f"adapt_every = {cfg.adapt_every}"]
    tmp = path.with_suffix(".toml.part")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
