"""Labelled cells: what a reviewer's saved digit fields teach the reader about the campaign's writing.

At ingest the reader keeps, beside each comb field's crop, the normalised 28x28 cells it read
(`<crop>.cells.npz`: one per box, zeros for an empty box, and what each box's cell is: its own
ink, the glyph rewritten above it that stood for it, or its own ink under a glyph written above
that might be a note or a correction). When a reviewer saves the field (accepting the suggestion
or typing a value), `keep_labelled` stores in `labelled_cells` each box whose final character is
unambiguous: the value has one character per box, the box holds ink, and it is not a box with
something written above it that did not stand for it. A struck-out box is kept as its rewrite.

These are children's handwriting: kept in the store only (never exported), deleted with the
workspace (`formstation reader forget` deletes them from a shared PostgreSQL store).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sqlalchemy import and_, delete, func, select
from sqlalchemy.engine import Connection

from forms.layout import Layout, load_layout
from formstation.store import DEFAULT_WORKSPACE, fields, forms, labelled_cells, now

CELLS_SUFFIX = ".cells.npz"
EMPTY, OWN, REWRITE, NOTED = 0, 1, 2, 3  # what a box's stored cell is


def cells_rel(crop_rel: str) -> str:
    """The cells file beside a comb field's crop (workspace-relative)."""
    return str(Path(crop_rel).with_suffix(CELLS_SUFFIX))


def save_cells(path: Path, norm: list[np.ndarray | None], rewrites: dict[int, np.ndarray],
               noted: set[int]) -> None:
    """Write the cells the reader saw for one comb: `norm` per box (None: empty), the glyph that
    stood for a struck-out box (`rewrites`), the boxes with a glyph above that did not (`noted`)."""
    cells = np.zeros((len(norm), 28, 28), np.uint8)
    kinds = np.zeros(len(norm), np.uint8)
    for i, im in enumerate(norm):
        if i in rewrites:
            cells[i], kinds[i] = rewrites[i], REWRITE
        elif im is not None:
            cells[i], kinds[i] = im, NOTED if i in noted else OWN
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, cells=cells, kinds=kinds)


def load_cells(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(cells (n, 28, 28) uint8, kinds (n,)) or None when there is no (readable) file."""
    try:
        with np.load(path) as d:
            return d["cells"], d["kinds"]
    except (OSError, ValueError, KeyError):
        return None


def own_cells(workspace: Path, crop_rel: str | None) -> np.ndarray | None:
    """The cells kept beside a comb field's crop when every box holds its own ink (none empty,
    struck out or with a glyph above it); None otherwise, or when there is no (readable) file."""
    got = load_cells(Path(workspace) / cells_rel(crop_rel)) if crop_rel else None
    if got is None or not len(got[1]) or not (got[1] == OWN).all():
        return None
    return got[0]


def labelled_boxes(value: str, kinds: np.ndarray, alphabet: str) -> list[int]:
    """The boxes whose final character is unambiguous: one character per box, inked, no glyph above
    it that did not stand for it, and a character the box may hold."""
    if len(value) != len(kinds):
        return []
    return [i for i, k in enumerate(kinds) if k in (OWN, REWRITE) and value[i] in alphabet]


def _layout_of(conn: Connection, form_id: str, cache: dict[str, Layout]) -> Layout | None:
    key = conn.execute(select(forms.c.layout_key).where(forms.c.form_id == form_id)).scalar()
    if key is None:
        return None
    if key not in cache:
        cache[key] = load_layout(key)
    return cache[key]


def keep_labelled(conn: Connection, workspace: Path | None, form_id: str, user: str,
                  values: dict[str, str], layouts: dict[str, Layout] | None = None) -> int:
    """Store the labelled cells of the comb fields among `values` a reviewer just saved (replacing
    what an earlier save of the same field stored); returns how many cells were kept."""
    layout = _layout_of(conn, form_id, layouts if layouts is not None else {})
    if layout is None:
        return 0
    workspace = workspace or os.environ.get("FORMSTATION_WORKSPACE") or DEFAULT_WORKSPACE
    combs = {z.name: z for z in layout.zones_of("digits")}
    kept, at = 0, now()
    for name, value in values.items():
        z = combs.get(name)
        if z is None:
            continue
        conn.execute(delete(labelled_cells).where(and_(labelled_cells.c.form_id == form_id,
                                                       labelled_cells.c.field == name)))
        row = conn.execute(select(fields.c.crop_path, fields.c.reader_version).where(
            and_(fields.c.form_id == form_id, fields.c.name == name))).first()
        got = load_cells(Path(workspace) / cells_rel(row.crop_path)) if row is not None and row.crop_path else None
        if got is None:
            continue
        cells, kinds = got
        boxes = labelled_boxes(value or "", kinds, z.alphabet)
        if boxes:
            conn.execute(labelled_cells.insert(), [
                {"form_id": form_id, "field": name, "box": i, "label": value[i], "cell": cells[i].tobytes(),
                 "value": value, "rewrite": int(kinds[i] == REWRITE), "reviewer": user,
                 "reader_version": row.reader_version, "saved_at": at} for i in boxes])
        kept += len(boxes)
    return kept


def drop(conn: Connection, form_id: str, names) -> None:
    """Forget the labelled cells of these fields of a form (a reviewer's save undone)."""
    conn.execute(delete(labelled_cells).where(and_(labelled_cells.c.form_id == form_id,
                                                   labelled_cells.c.field.in_(list(names)))))


def reviewed_forms(conn: Connection) -> int:
    """How many forms have labelled cells."""
    return int(conn.execute(select(func.count(func.distinct(labelled_cells.c.form_id)))).scalar() or 0)


def forget(conn: Connection) -> int:
    """Delete every labelled cell; returns how many there were."""
    return int(conn.execute(delete(labelled_cells)).rowcount or 0)
