"""A simulated reviewer: clears the review queue typing the simulator's truth (tests, benches).

`clear_queue` takes the forms in review one at a time under a lease (review_ui.queue) and saves,
for every field the form shows, the value the parent wrote (review_ui.decisions); a form the truth says
shares one phone with its whole class is rejected for it. `typed` lets a test make the reviewer
type something else (a careless or malicious reviewer).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

TRUE_VALUE: dict[str, Callable[[dict], str]] = {
    "applicant_signature": lambda f: "present" if f["applicant_signature"] else "absent",
    "guardian_signature": lambda f: "present" if f["guardian_signature"] else "absent",
    "id_copy": lambda f: "present" if f["id_copy"] else "absent",
    "id_copy_number": lambda f: f["id_copy"] or "",
    "photo": lambda f: "absent" if f["photo"] == "none" else "pasted",
    "photo_background": lambda f: "dark" if f["photo"] == "grey_bg" else "light",
    "photo_color": lambda f: "grayscale" if f["photo"] == "photocopy" else "color",
    "photo_face": lambda f: "yes",
}


def load_truth(path: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    return {t["form_id"]: t for t in rows}


def true_value(truth: dict, name: str) -> str:
    f = truth["fields"]
    return TRUE_VALUE.get(name, lambda f: f.get(name) or "")(f)


def clear_queue(store, truth: dict[str, dict], user: str = "rita", only: Iterable[str] | None = None,
                typed: Callable[[str, str, str], str] | None = None) -> int:
    """Review every form waiting in review (or only those in `only`), in form id order, each under
    a lease as the review station holds one; returns how many were decided. `typed(form_id, field,
    true value)` is what the reviewer types (default: the true value)."""
    from sqlalchemy import select

    from formstation.store import forms
    from review_ui import data, decisions, queue

    with store.tx() as conn:
        todo = sorted(conn.execute(select(forms.c.form_id).where(forms.c.status == "review")).scalars())
    wanted = set(todo) if only is None else set(only) & set(todo)
    done = 0
    for fid in sorted(wanted):
        with store.tx() as conn:
            queue.lease_form(conn, fid, user)
            if not queue.holds(conn, fid, user):
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
            queue.release(conn, fid, user)
        done += 1
    return done
