"""The station learns from its reviewers: fit a candidate reader, promote it only when it is better,
re-read what waits; roll back to any kept version. Used by `formstation reader`, by `--auto N` on
ingest/watch and by the supervisor's Reader page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from formstation.store import Store, audit, now
from ocr import adapt, labels, versions
from ocr.digits import OnnxReader, default_classifier
from ocr.reread import Reread, reread_waiting

log = logging.getLogger("formstation.learning")


@dataclass(frozen=True)
class Outcome:
    version: str | None  # the candidate kept (None: nothing fitted)
    promoted: bool
    message: str
    figures: dict = field(default_factory=dict)
    reread: Reread | None = None


def _log(store: Store, user: str, action: str, old: str, new: str) -> None:
    with store.tx() as conn:
        conn.execute(audit.insert().values(at=now(), user_name=user, action=action, form_id=None, field="reader",
                                           old_value=old, new_value=new))


def _line(f: dict) -> str:
    return (f"cells {f['cell_accuracy']:.2%} of {f['cells']}, fields {f['field_accuracy']:.2%} of {f['fields']}, "
            f"accepted {f['accepted_share']:.2%} ({f['accepted_wrong']} wrong)")


def run_adapt(store: Store, user: str = "station") -> Outcome:
    """Fit a candidate on the labelled cells, keep it as a version with its figures, and make it
    current (then re-read the forms in review) only when it beats the current reader."""
    from ocr.rules import load_config

    ws = Path(store.workspace)
    shipped = default_classifier()
    if not isinstance(shipped, OnnxReader):
        return Outcome(None, False, "the installed reader has no heads to adapt (the v2 reader is not shipped)")
    current_name = versions.current_name(ws)
    current = versions.load_reader(ws, current_name)
    cfg = load_config(store)
    with store.tx() as conn:
        heads, figs, cmp = adapt.adapt(conn, ws, cfg.thresholds, current, shipped, cfg.unusual_writing_share)
    if heads is None or cmp is None:
        return Outcome(None, False, "nothing adapted, too little to learn from yet: " + "; ".join(figs["too_little"]),
                       figs)
    name = versions.next_name(ws)
    versions.save_version(ws, name, heads, figs)
    lines = [f"current {current.version}: {_line(figs['current'])}", f"candidate {name}: {_line(figs['candidate'])}"]
    u = figs.get("unreviewed")
    if u and u["fields"]:
        lines.append(f"on {u['fields']} digit fields of {u['forms']} forms no reviewer opened: current accepts "
                     f"{u['current_accepted']}, candidate {u['candidate_accepted']} ({u['changed']} of the current's "
                     f"read otherwise; temperatures x{figs['fit'].get('temperature_scale', 1.0)})")
    c = figs.get("cell_changes")
    if c:
        lines.append(f"held-out cells read differently: {c['fixed']} right by the candidate only, {c['broken']} by "
                     f"the current reader only; better on {c['forms_better']} forms, worse on {c['forms_worse']} "
                     f"(chance {c['p_value']:.2%})")
    if not cmp.promoted:
        _log(store, user, "reader_candidate", current.version, name)
        return Outcome(name, False, "\n".join([*lines, f"{name} is kept but not used: " + "; ".join(cmp.reasons)]),
                       figs)
    versions.set_current(ws, name)
    _log(store, user, "reader_current", current.version, name)
    rr = reread_waiting(store)
    lines.append(f"{name} is now the current reader; re-read {rr.forms} forms in review "
                 f"({rr.changed} values changed), {rr.accepted} accepted without a reviewer")
    return Outcome(name, True, "\n".join(lines), figs, rr)


def use_version(store: Store, name: str, user: str = "station") -> Reread:
    """Make a kept version current (a rollback, or the shipped reader again) and re-read what waits."""
    ws = Path(store.workspace)
    old = versions.current_name(ws)
    versions.set_current(ws, name)
    _log(store, user, "reader_current", old, name)
    return reread_waiting(store)


def last_fitted_at(ws: Path) -> int:
    """How many forms had labelled cells when the last candidate was fitted (0: never)."""
    return max((int(v.figures.get("reviewed_forms", 0)) for v in versions.list_versions(ws) if not v.shipped),
               default=0)


def due(store: Store, every: int) -> bool:
    """At least `every` more forms reviewed since the last candidate was fitted."""
    if every <= 0:
        return False
    with store.tx() as conn:
        n = labels.reviewed_forms(conn)
    return n - last_fitted_at(Path(store.workspace)) >= every


def auto(store: Store, every: int | None) -> Outcome | None:
    """`--auto N`: adapt when N more forms were reviewed since the last fit; None when not due.
    Without N, the workspace's `station.toml` says ([reader] adapt_every; 0: never)."""
    if every is None:
        from formstation.config import load_config

        every = load_config(store.workspace).adapt_every
    if not every or not due(store, every):
        return None
    out = run_adapt(store)
    log.info("reader adapt: %s", out.message.replace("\n", "; "))
    return out
