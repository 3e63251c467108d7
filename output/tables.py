"""Export tables from `ExportForm` records: pure functions, no I/O.

Headers are a public contract (the bureau's import and the schools' chase lists read them).
Card data uses the final values (after correction) next to the printed ones; the chase lists
(rejections, pending, not returned) use the printed values, which are what the school has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from forms.layout import DEFAULT_LAYOUT, ExportSpec, Layout, load_layout
from formstation.printjob import safe_name
from ocr.reasons import REASONS, zh
from output.records import ExportForm

CARD_HEADER = ("表单编号", "学校", "班级", "姓名", "性别", "身份证号码", "核对前姓名", "核对前身份证号码",
               "联系电话", "学籍号", "开户银行", "代理人证件号码", "代理人联系电话", "代理人关系", "照片文件",
               "冷僻字")  # appended last: the earlier columns keep their places
REJECTION_HEADER = ("表单编号", "学校", "班级", "姓名", "身份证号码", "原因代码", "原因", "审核员备注")
RARE_HEADER = ("表单编号", "学校", "班级", "姓名", "身份证号码", "冷僻字")
PENDING_HEADER = ("表单编号", "学校", "班级", "姓名", "待审字段")
NOT_RETURNED_HEADER = ("表单编号", "学校", "班级", "学籍号", "姓名")
CLASS_SHEET_HEADER = ("身份证号码", "姓名", "核对前身份证号码", "核对前姓名")
RELATION_ZH = {"father": "父亲", "mother": "母亲", "other": "其他", "": ""}

Table = tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class PhotoPlan:
    form_id: str
    rel: str          # photos/<学校>/<班级>/<身份证号码>-<姓名>.jpg
    source: Path      # the image to convert
    kind: str         # pasted | roster


def by_status(forms: Sequence[ExportForm], *statuses: str) -> tuple[ExportForm, ...]:
    return tuple(f for f in forms if f.status in statuses)


def class_dir(f: ExportForm) -> str:
    return f"photos/{safe_name(f.school)}/{safe_name(f.class_name)}"


def plan_photos(accepted: Sequence[ExportForm], workspace: Path) -> tuple[PhotoPlan, ...]:
    """Which image becomes each accepted form's card photo, and under which export path.

    The pasted photo (already cropped by the reader) wins; else the roster's photo; else none
    (children under 6 need none). Two forms that would share a file name keep both: the later
    one (in export order) gets its form id appended.
    """
    plans, used = [], set()
    for f in accepted:
        photo = f.field(f.layout.name_of("applicant_photo") or "photo")
        if photo and photo.value == "pasted" and photo.crop_path:
            src, kind = workspace / photo.crop_path, "pasted"
        elif f.roster_photo:
            src, kind = Path(f.roster_photo), "roster"
        else:
            continue
        stem = f"{class_dir(f)}/{safe_name(f'{f.final_id}-{f.final_name}')}"
        rel = f"{stem}.jpg"
        if rel.casefold() in used:
            rel = f"{stem}-{f.form_id}.jpg"
        used.add(rel.casefold())
        plans.append(PhotoPlan(f.form_id, rel, src, kind))
    return tuple(plans)


def export_spec(lay: Layout) -> ExportSpec:
    """The card data file a layout's forms go to: its own, else today's layout's."""
    spec = lay.export or load_layout(DEFAULT_LAYOUT).export
    assert spec is not None, "the default layout declares its export"
    return spec


def column_value(f: ExportForm, value: str, photo_rel: Mapping[str, str]) -> str:
    """One cell of a card data file: what the layout's export column `value` names (forms.layout)."""
    own = {"form_id": f.form_id, "school": f.school, "class": f.class_name, "student_no": f.student_no,
           "bank": f.bank, "printed_name": f.name, "printed_id": f.id_number}
    if value in own:
        return own[value]
    if value == "final_name":
        return f.final_name
    if value == "final_gender":
        return f.final_gender
    if value == "final_id":
        return f.final_id
    if value == "photo_file":
        return photo_rel.get(f.form_id, "")
    if value == "rare_characters":
        return rare_chars(f.final_name)
    kind, _, name = value.partition(":")
    if kind == "field":
        return f.value(name)
    v = f.role_value(name)
    if kind == "option":
        z = f.layout.by_role(name)
        return next((o.label for o in z.options if o.name == v), v) if z else v
    return v


def card_files(forms: Sequence[ExportForm], accepted: Sequence[ExportForm],
               photo_rel: Mapping[str, str]) -> dict[str, tuple[tuple[str, ...], Table]]:
    """Card data file stem -> (header, rows of its accepted forms): today's `card_data` always,
    another layout's file when the export holds forms of that layout."""
    default = export_spec(load_layout(DEFAULT_LAYOUT))
    specs = {default.card_file: default}
    by_layout = {key: export_spec(load_layout(key)) for key in sorted({f.layout_key for f in forms})}
    for key, spec in by_layout.items():
        if spec.card_file in specs and specs[spec.card_file].columns != spec.columns:
            raise ValueError(f"layout {key}: card file {spec.card_file!r} is declared with other columns elsewhere")
        specs[spec.card_file] = spec
    stem_of = {key: spec.card_file for key, spec in by_layout.items()}
    return {stem: (tuple(h for h, _ in spec.columns), card_rows(
        [f for f in accepted if stem_of.get(f.layout_key, export_spec(f.layout).card_file) == stem], photo_rel, spec))
        for stem, spec in specs.items()}


def card_rows(accepted: Sequence[ExportForm], photo_rel: Mapping[str, str], spec: ExportSpec | None = None) -> Table:
    spec = spec or export_spec(load_layout(DEFAULT_LAYOUT))
    return tuple(tuple(column_value(f, value, photo_rel) for _, value in spec.columns) for f in accepted)


def rare_chars(name: str) -> str:
    """The characters of a name outside GB 2312 (冷僻字), each once, in order; '' for none."""
    return "".join(dict.fromkeys(ch for ch in name if not _gb2312(ch)))


def rare_rows(accepted: Sequence[ExportForm]) -> Table:
    """Accepted forms whose final name has a rare character: submitted through a separate channel."""
    return tuple((f.form_id, f.school, f.class_name, f.final_name, f.final_id, rare_chars(f.final_name))
                 for f in accepted if rare_chars(f.final_name))


def reason_text(code: str, detail: str) -> str:
    text = zh(code) if code else ""
    return f"{text}（{detail}）" if detail else text


def rejection_rows(rejected: Sequence[ExportForm]) -> Table:
    """One row per reason the form was rejected for (a reject reason: the parent's or the school's to
    fix), each once per form, its text in Chinese; never the station's own doubt (review reasons such
    as LOW_CONFIDENCE). A reviewer's note goes in its own column. A rejected form without any reject
    reason still gets one row."""
    rows = []
    for f in rejected:
        base = (f.form_id, f.school, f.class_name, f.name, f.id_number)
        note = "；".join(dict.fromkeys(r.detail for r in f.reasons if r.code == "REVIEWER_REJECTED" and r.detail))
        codes = dict.fromkeys(r.code for r in f.reasons if r.code != "REVIEWER_REJECTED"
                              and r.code in REASONS and REASONS[r.code].severity == "reject")
        if not codes and any(r.code == "REVIEWER_REJECTED" for r in f.reasons):
            codes = {"REVIEWER_REJECTED": None}
        rows += [base + (c, zh(c), note) for c in codes] or [base + ("", "", note)]
    return tuple(rows)


def pending_fields(f: ExportForm) -> str:
    """The fields the reasons name, in reason order; a form-level reason (no field) shows its code."""
    seen: dict[str, None] = {}
    for r in f.reasons:
        seen.setdefault(r.field or r.code, None)
    return ",".join(seen)


def pending_rows(review: Sequence[ExportForm]) -> Table:
    return tuple((f.form_id, f.school, f.class_name, f.name, pending_fields(f)) for f in review)


def not_returned_rows(printed: Sequence[ExportForm]) -> Table:
    return tuple((f.form_id, f.school, f.class_name, f.student_no, f.name) for f in printed)


def class_sheets(accepted: Sequence[ExportForm], photo_rel: Mapping[str, str]) -> dict[str, Table]:
    """Per class folder that holds photos: its sheet path -> rows (the forms with a photo)."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for f in accepted:
        if f.form_id in photo_rel:
            path = f"{class_dir(f)}/{safe_name(f.class_name)}.xlsx"
            out.setdefault(path, []).append((f.final_id, f.final_name, f.id_number, f.name))
    return {k: tuple(v) for k, v in out.items()}


def form_record(f: ExportForm, photo_rel: Mapping[str, str]) -> dict:
    """The machine-readable record of one form (one line of forms.jsonl)."""
    fields = {n: {"value": v, "confidence": 1.0, "source": "printed", "updated_by": None}
              for n, v in f.printed_values.items()}
    for name, fv in f.fields:
        key = name if name not in fields else f"read_{name}"
        fields[key] = {"value": fv.value, "source": fv.source, "updated_by": fv.updated_by,
                       "confidence": None if fv.confidence is None else round(fv.confidence, 4)}
    return {
        "form_id": f.form_id, "layout": f.layout_key, "status": f.status, "school": f.school, "class": f.class_name,
        "student_no": f.student_no, "received_at": f.received_at, "decided_at": f.decided_at,
        "final": {"name": f.final_name, "id_number": f.final_id, "gender": f.final_gender},
        "fields": fields, "flags": flags(f, photo_rel),
        "reasons": [{"code": r.code, "field": r.field or None, "detail": r.detail or None,
                     "text": zh(r.code)} for r in f.reasons],
        "reason_codes": sorted({r.code for r in f.reasons}),
        "photo_file": photo_rel.get(f.form_id) or None,
    }


def flags(f: ExportForm, photo_rel: Mapping[str, str]) -> list[str]:
    out = []
    if f.role_value("corrected_name").strip():
        out.append("name_corrected")
    if f.role_value("corrected_id").strip():
        out.append("id_corrected")
    if any(r.code == "RARE_CHARACTER" for r in f.reasons) or not _gb2312(f.final_name):
        out.append("rare_character")
    if f.role_value("applicant_photo") == "pasted":
        out.append("photo_pasted")
    if f.roster_photo:
        out.append("roster_photo")
    if f.form_id in photo_rel:
        out.append("in_photo_folder")
    return out


def _gb2312(s: str) -> bool:
    try:
        s.encode("gb2312")
        return True
    except UnicodeEncodeError:
        return False
