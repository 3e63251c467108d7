"""Supervisor figures: progress per school and class, reviewer throughput. Read-only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Connection

from formstation.store import audit, forms, pages, persons, reasons, scan_files
from ocr.reasons import REASONS

IDLE_GAP_S = 10 * 60  # a pause longer than this between two decisions is not working time


def progress(conn: Connection) -> list[dict]:
    """Per school and class: printed, received, accepted, in review, waiting for a colour rescan,
    rejected, not returned."""
    def n(cond):
        return func.sum(case((cond, 1), else_=0))

    st = forms.c.status
    q = (select(persons.c.school, persons.c.class_name,
                func.count(forms.c.form_id).label("printed"),
                n(st != "printed").label("received"),
                n(st == "accepted").label("accepted"),
                n(st == "review").label("in review"),
                n(st == "rescan").label("colour rescan"),
                n(st == "rejected").label("rejected"),
                n(st == "printed").label("not returned"))
         .join(persons, forms.c.person_id == persons.c.person_id)
         .group_by(persons.c.school, persons.c.class_name).order_by(persons.c.school, persons.c.class_name))
    return [{k: (int(v) if isinstance(v, int | float) else v) for k, v in r._mapping.items()}
            for r in conn.execute(q)]


def rescans(conn: Connection) -> list[dict]:
    """Forms waiting for their page to be scanned again in colour, in the order the paper is filed
    (school, class, student number), with the scan file and page they came in."""
    q = (select(persons.c.school, persons.c.class_name.label("class"), persons.c.student_no, persons.c.name,
                forms.c.form_id, scan_files.c.name.label("scan file"), (pages.c.page_index + 1).label("page"))
         .join(persons, forms.c.person_id == persons.c.person_id)
         .join(pages, and_(pages.c.form_id == forms.c.form_id, pages.c.kind == "form"))
         .join(scan_files, scan_files.c.sha256 == pages.c.file_sha256, isouter=True)
         .where(forms.c.status == "rescan")
         .order_by(persons.c.school, persons.c.class_name, persons.c.student_no, forms.c.form_id, pages.c.page_id))
    return [dict(r._mapping) for r in conn.execute(q)]


def not_in_roster(conn: Connection) -> list[dict]:
    """Pages whose barcode names a form this station never printed (printed by another station, or
    its roster was removed): the form id the barcode carries, the scan file and page, when."""
    q = (select(pages.c.form_id.label("form id on the barcode"), scan_files.c.name.label("scan file"),
                (pages.c.page_index + 1).label("page"), pages.c.created_at.label("scanned"))
         .join(scan_files, scan_files.c.sha256 == pages.c.file_sha256, isouter=True)
         .where(pages.c.kind == "not_in_roster").order_by(pages.c.page_id))
    return [dict(r._mapping) for r in conn.execute(q)]


def review_reasons(conn: Connection) -> list[dict]:
    """Why forms wait in review: per reason code, how many forms in review carry it (a form with
    several reasons counts under each), most frequent first."""
    q = (select(reasons.c.code, func.count(func.distinct(reasons.c.form_id)).label("forms"))
         .join(forms, forms.c.form_id == reasons.c.form_id).where(forms.c.status == "review")
         .group_by(reasons.c.code))
    rows = [{"reason": r.code, "text": REASONS[r.code].zh if r.code in REASONS else "", "forms in review": int(r.forms)}
            for r in conn.execute(q)]
    return sorted(rows, key=lambda r: (-r["forms in review"], r["reason"]))


def _ts(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")


def throughput(conn: Connection) -> list[dict]:
    """Per reviewer: forms decided, working hours (idle gaps left out), forms per hour."""
    q = (select(audit.c.user_name, audit.c.at).where(audit.c.action == "decision")
         .order_by(audit.c.user_name, audit.c.at))
    per: dict[str, list[datetime]] = {}
    for r in conn.execute(q):
        per.setdefault(r.user_name or "?", []).append(_ts(r.at))
    out = []
    for user, times in per.items():
        worked = sum(min((b - a).total_seconds(), IDLE_GAP_S) for a, b in zip(times, times[1:], strict=False))
        worked += 60  # the first decision took some time too
        hours = worked / 3600
        out.append({"reviewer": user, "forms": len(times), "hours": round(hours, 2),
                    "forms/hour": round(len(times) / hours, 1)})
    return sorted(out, key=lambda d: d["reviewer"])
