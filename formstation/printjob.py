"""`formstation print`: choose roster persons, give each a form id, write one PDF per school/class."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from sqlalchemy import select

from forms.layout import Layout
from forms.printing import PrintRecord, render_pdf
from formstation.config import load_config, save_config
from formstation.errors import ExitCode, StationError
from formstation.store import Store, forms, now, persons

_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


def safe_name(s: str) -> str:
    """A file/folder name from user text: path separators and reserved characters become '_'."""
    cleaned = _UNSAFE.sub("_", s).strip(" .")
    return cleaned or "_"


def form_id_for(person_id: int) -> str:
    return f"F{person_id:07d}"


@dataclass(frozen=True)
class PrintedFile:
    school: str
    class_name: str
    path: Path
    pages: int


def _select_people(store: Store, school: str | None, class_name: str | None) -> list:
    q = select(persons)
    if school:
        q = q.where(persons.c.school == school)
    if class_name:
        q = q.where(persons.c.class_name == class_name)
    with store.tx() as conn:
        rows = list(conn.execute(q))
    return sorted(rows, key=lambda r: (r.school, r.class_name, r.student_no or "", r.id_number))


def _ensure_form_ids(store: Store, people: list, layout: Layout, files: dict[int, str]) -> dict[int, str]:
    """Form id per person (kept across reprints, so a barcode never changes meaning)."""
    out = {}
    with store.tx() as conn:
        have = {r.person_id: r.form_id for r in conn.execute(select(forms.c.person_id, forms.c.form_id))}
        for p in people:
            fid = have.get(p.person_id) or form_id_for(p.person_id)
            values = {"printed_at": now(), "print_file": files[p.person_id]}
            if p.person_id in have:
                conn.execute(forms.update().where(forms.c.form_id == fid).values(**values))
            else:
                conn.execute(forms.insert().values(form_id=fid, person_id=p.person_id,
                                                   layout_key=layout.key, status="printed", **values))
            out[p.person_id] = fid
    return out


def print_forms(store: Store, layout: Layout, out_dir: Path, school: str | None = None,
                class_name: str | None = None, campaign_date: date | None = None) -> list[PrintedFile]:
    """One PDF per school/class. `campaign_date`: the day ages are computed on, kept in the
    workspace's station.toml (without one, ages count from the day each form was printed)."""
    people = _select_people(store, school, class_name)
    if not people:
        sel = " / ".join(x for x in (school, class_name) if x) or "the roster"
        raise StationError(f"no students found for {sel}; import a roster first", ExitCode.NOTHING_TO_DO)
    groups: dict[tuple[str, str], list] = {}
    for p in people:
        groups.setdefault((p.school, p.class_name), []).append(p)
    names = {k: out_dir / f"{safe_name(k[0])}_{safe_name(k[1])}.pdf" for k in groups}
    files = {p.person_id: names[k].name for k, ps in groups.items() for p in ps}
    ids = _ensure_form_ids(store, people, layout, files)
    if campaign_date is not None:
        cfg = load_config(store.workspace)
        save_config(store.workspace, replace(cfg, campaign_date=campaign_date))
    out_dir.mkdir(parents=True, exist_ok=True)
    result = []
    for (sch, cls), ps in groups.items():
        recs = [PrintRecord(ids[p.person_id], p.school, p.class_name, p.name, p.gender or "",
                            p.id_number, p.student_no or "", p.bank or "", p.photo_path) for p in ps]
        tmp = names[(sch, cls)].with_suffix(".pdf.part")
        n = render_pdf(layout, recs, tmp, title=f"{layout.title} {sch} {cls}")
        tmp.replace(names[(sch, cls)])
        result.append(PrintedFile(sch, cls, names[(sch, cls)], n))
    return result
