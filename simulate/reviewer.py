"""A simulated reviewer: clears the review queue typing the simulator's truth (tests, benches).

`clear_queue` takes the forms in review one at a time under a lease (review_ui.review_queue) and saves,
for every field the form shows, the value the parent wrote (review_ui.decisions); a form the truth says
shares one phone with its whole class is rejected for it. `typed` lets a test make the reviewer
type something else (a careless or malicious reviewer).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from forms.layout import DEFAULT_LAYOUT, load_layout

# what a careful reviewer types for a field of a kind (or a reading derived from one), from the
# truth's value of the zone: signatures and attachments present or not, a pasted photo's looks
_BY_KIND: dict[str, Callable[[object], str]] = {
    "signature": lambda v: "present" if v else "absent",
    "attachment": lambda v: "present" if v else "absent",
    "attachment_number": lambda v: v or "",
    "photo": lambda v: "absent" if v in ("none", "", None) else "pasted",
    "photo_background": lambda v: "dark" if v == "grey_bg" else "light",
    "photo_color": lambda v: "grayscale" if v == "photocopy" else "color",
    "photo_face": lambda v: "yes",
}


def load_truth(path: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    return {t["form_id"]: t for t in rows}


def true_value(truth: dict, name: str) -> str:
    """What the parent wrote in field `name` of the form's own layout (truth "layout"), as the
    review station takes it: by the field's kind, a derived reading (`photo_color`) by its zone's."""
    f = truth["fields"]
    z, suffix = load_layout(truth.get("layout", DEFAULT_LAYOUT)).source_of(name)
    typed = _BY_KIND.get(f"{z.kind}_{suffix}" if suffix else z.kind) if z else None
    return typed(f.get(z.name)) if typed else f.get(name) or ""


def clear_queue(store, truth: dict[str, dict], user: str = "rita", only: Iterable[str] | None = None,
                typed: Callable[[str, str, str], str] | None = None) -> int:
    """Review every form waiting in review (or only those in `only`), in form id order, each under
    a lease as the review station holds one; returns how many were decided. `typed(form_id, field,
    true value)` is what the reviewer types (default: the true value)."""
    from sqlalchemy import select

    from formstation.store import forms
    from review_ui import data, decisions, review_queue

    with store.tx() as conn:
        todo = sorted(conn.execute(select(forms.c.form_id).where(forms.c.status == "review")).scalars())
    wanted = set(todo) if only is None else set(only) & set(todo)
    done = 0
    for fid in sorted(wanted):
        with store.tx() as conn:
            review_queue.lease_form(conn, fid, user)
            if not review_queue.holds(conn, fid, user):
                continue  # another reviewer has it
            view = data.load_form(conn, fid)
            codes = [c for c, _ in view.form_reasons]
            t = truth[fid]
            if "PHONE_SHARED_BY_CLASS" in codes and "PHONE_SHARED_BY_CLASS" in t["expected_reasons"]:
                decisions.reject_form(conn, fid, user, "PHONE_SHARED_BY_CLASS", "one number on the whole class")
            else:
                values = {it.name: true_value(t, it.name) for it in view.items}
                if typed is not None:
                    values = {n: typed(fid, n, v) for n, v in values.items()}
                decisions.save_form(conn, fid, user, values, codes, store.workspace)
            review_queue.release(conn, fid, user)
        done += 1
    return done
