"""What the queue shows of one step, as HTML: a field's crop with its boxes framed beside the reading,
and the whole-form step's evidence (the class's phones side by side, the name crop of a rare
character, the scans of a form fed twice). Pure functions of the view, except the image reads.
"""

from __future__ import annotations

import base64
import io
from collections import Counter

from formstation.store import Store
from output.tables import rare_chars
from review_ui import data, fieldinfo
from review_ui.ui_common import Ctx, esc, img_tag, reason_html
from review_ui.wording import EN

NAME_DPI = 200  # ocr.align.ALIGN_DPI: the stored page images are the aligned pages


def reasons_html(pairs) -> str:
    return "<ul>" + "".join(f"<li>{reason_html(code, detail)}</li>" for code, detail in pairs) + "</ul>"


# ------------------------------------------------------------------ a field's boxes

def framed(it: data.Item, shown: str) -> list[dict]:
    """Every box of a comb field the reviewer must look at, in order: the reader's doubtful ones;
    those the constraint decoder changed (the reading differs from the raw cell-by-cell reading,
    `it.suggestion`, e.g. a leading 0 made 1 for a mobile number: "raw"); those where the entry
    box holds another character than the reading ("offered"). Each carries "box" (its frame)."""
    shape = fieldinfo.digit_shape(it.name, fieldinfo.layout(it.layout_key))
    marks = {int(d["i"]): dict(d) for d in it.doubt}
    if not shape or it.source != "read" or len(it.value) != shape[0]:
        return [marks[i] for i in sorted(marks)]
    fracs = fieldinfo.cell_fracs(it.name, it.layout_key)

    def mark(i: int) -> dict:
        return marks.setdefault(i, {"i": i, "read": it.value[i], "p": 0.0, "alt": "", "box": list(fracs[i])})

    if len(it.suggestion) == shape[0]:
        for i, (raw, ch) in enumerate(zip(it.suggestion, it.value, strict=True)):
            if raw != ch and raw != "?":
                mark(i)["raw"] = raw
    if len(shown) == shape[0]:
        for i, (ch, offered) in enumerate(zip(it.value, shown, strict=True)):
            if ch != offered:
                mark(i)["offered"] = offered
    return [marks[i] for i in sorted(marks)]


def _doubt_word(d: dict) -> str:
    extra = []
    if "raw" in d:
        extra.append(f"the box itself reads {d['raw']}, made {d['read']} to fit a valid number")
    if "offered" in d:
        extra.append(f"the entry box holds {d['offered']}")
    if "other" in d:
        extra.append(f"the other phone reads {d['other']} here")
    if "other_forms" in d:
        extra.append(f"{d.get('n_other', 'other')} other forms of the school read {d['other_forms']} here")
    if "above" in d:
        base = f"reads {d['read'] or '?'}; written above it: {d['above']}"
    elif "struck" in d:
        sure = "" if float(d.get("p", 0)) >= 0.9 else ", unsure"
        base = f"struck out, rewritten above as {d['read'] or '?'}{sure}"
    elif d.get("alt") and d.get("read"):
        base = f"{d['read']} or {d['alt']}"
    elif "raw" in d:
        base = ""
    else:
        base = f"reads {d['read']}" if d.get("read") else "empty"
    return "; ".join(filter(None, [base, *extra]))


def _doubt_tag(d: dict) -> str:
    if "raw" in d:
        tag = f"{d['raw']}→{d['read']}"
    elif "above" in d:
        tag = f"{d['read'] or '?'}, ↑{d['above']}"
    elif "struck" in d:
        tag = f"↑{d['read'] or '?'}"
    elif "other" in d or "other_forms" in d:
        tag = f"{d['read'] or '?'}≠{d.get('other', d.get('other_forms'))}"
    elif d.get("read") and d.get("alt"):
        tag = f"{d['read']}/{d['alt']}"
    else:
        tag = d.get("read") or "?"
    return tag + (f" ⇒{d['offered']}" if "offered" in d else "")


def marks_html(marks: list[dict]) -> str:
    """A frame over each box to look at, tagged with what it reads."""
    out = []
    for d in marks:
        box = d.get("box")
        if not box or len(box) != 4:
            continue
        x0, y0, x1, y1 = (100 * float(v) for v in box)
        out.append(f"<div class='fs-mark' style='left:{x0:.2f}%;top:{y0:.2f}%;width:{x1 - x0:.2f}%;"
                   f"height:{y1 - y0:.2f}%'><span>{esc(_doubt_tag(d))}</span></div>")
    return "".join(out)


def value_html(it: data.Item, marks: list[dict]) -> tuple[str, str]:
    """The reading, its framed characters highlighted, and which boxes to look at."""
    value = it.value or ""
    shape = fieldinfo.digit_shape(it.name, fieldinfo.layout(it.layout_key))
    hot = {int(d["i"]) for d in marks if d.get("read")}
    if shape and len(value) == shape[0] and hot:
        text = "".join(f"<mark>{esc(c)}</mark>" if i in hot else esc(c) for i, c in enumerate(value))
    else:
        text = esc(value or "(empty)")
    line = ""
    if marks:
        boxes = ", ".join(f"{int(d['i']) + 1} ({esc(_doubt_word(d))})" for d in marks)
        line = (f"<div class='fs-doubt'>look at box {boxes}</div>"
                "<div class='fs-muted'>↓ / ↑ select a framed box in the entry: type one character to replace it</div>")
    elif shape and value and it.source == "read":
        line = "<div class='fs-muted'>no single box is doubtful: check the whole number</div>"
    return f"read: <code>{text}</code>", line


def entry_default(view: data.FormView, it: data.Item) -> tuple[str, str]:
    """(what the entry box is pre-filled with, a line about the pasted ID copy)."""
    if it.other is not None:
        return it.value or "", ""
    default = it.value or it.suggestion or ""
    if it.copy_number and it.copy_number == it.value:
        return default, "<div class='fs-muted'>the pasted ID copy reads the same number</div>"
    if not it.copy_number:
        return default, ""
    if it.copy_number == view.id_number:  # the copy backs a name correction: the ID is as printed
        return default, (f"<div class='fs-doubt'>the pasted ID copy reads <code>{esc(it.copy_number)}</code>, "
                         "the printed ID: was the ID corrected at all?</div>")
    doubtful = any(code == "LOW_CONFIDENCE" for code, _ in it.reasons)
    line = (f"<div class='fs-doubt'>the pasted ID copy reads <code>{esc(it.copy_number)}</code>"
            + (" (offered below: check it against the handwriting)" if doubtful else "") + "</div>")
    return (it.copy_number if doubtful else default), line


def field_panel(ctx: Ctx, view: data.FormView, it: data.Item, default: str, copy_line: str) -> tuple[str, list[int]]:
    """(the crop beside the reading as one HTML element, the framed boxes' positions)."""
    if it.other is not None:
        return other_scan_html(ctx, it), []
    marks = framed(it, default)
    conf = f"{it.confidence:.2f}" if it.confidence is not None else "-"
    sug = (f" · suggestion <code>{esc(it.suggestion)}</code>"
           if it.suggestion and it.suggestion != it.value else "")
    read, doubt_line = value_html(it, marks)
    body = (f"<div class='fs-panel'><div class='fs-crop'><div class='fs-cropbox'>{img_tag(ctx.store, it.crop_path)}"
            f"{marks_html(marks)}</div></div>"
            f"<div class='fs-info'><h4>{esc(data.label(it.name, it.layout_key))}</h4>{read}"
            f" · confidence <b>{conf}</b>{sug}{doubt_line}{copy_line}" + reasons_html(it.reasons) + "</div></div>")
    n = len(default)
    return body, [int(d["i"]) for d in marks if int(d["i"]) < n]


def other_scan_html(ctx: Ctx, it: data.Item) -> str:
    """A reviewer's value that a later scan reads differently: both crops, one above the other."""
    o = it.other or {}
    conf = o.get("confidence")
    conf = f" · confidence <b>{float(conf):.2f}</b>" if isinstance(conf, int | float) else ""
    return (f"<div class='fs-panel'><div class='fs-crop'>"
            f"<div class='fs-muted'>earlier scan</div>{img_tag(ctx.store, it.crop_path)}"
            f"<div class='fs-muted'>later scan</div>{img_tag(ctx.store, o.get('crop'))}</div>"
            f"<div class='fs-info'><h4>{esc(data.label(it.name, it.layout_key))}</h4>"
            f"kept: <code>{esc(it.value or '(empty)')}</code> (a reviewer's value, from the earlier scan)<br>"
            f"the later scan reads: <code>{esc(o.get('value') or '(empty)')}</code>{conf}"
            "<div class='fs-doubt'>Enter keeps the reviewer's value; type the later reading to take it</div>"
            + reasons_html(it.reasons) + "</div></div>")


# ------------------------------------------------------------------ the whole-form step's evidence

def scans_html(view: data.FormView) -> str:
    """For a form scanned more than once: its scans, what the later ones read differently, and a
    rejection the new paper lifted."""
    if len(view.scans) < 2:
        return ""
    reopened = "".join(f"<div class='fs-doubt'>Rejected before this scan came in: {esc(r['code'])} "
                       f"({esc(r['note'])}, {esc(r['at'])}). Reject it again below if the new paper "
                       "does not fix it.</div>" for r in view.reopened)
    rows = "".join(f"<li>scan {i}: {esc(s['file'])}, page {s['page']} · {esc(s['at'])}</li>"
                   for i, s in enumerate(view.scans, 1))
    diff = "".join(f"<li>{esc(data.label(r['field'], view.layout_key))}: <code>{esc(r['before'] or '(empty)')}</code> → "
                   f"<code>{esc(r['now'] or '(empty)')}</code></li>" for r in view.rescans)
    diff = (f"<div>Read differently by a later scan (earlier → later; a value a reviewer set is kept):</div><ul>{diff}</ul>"
            if diff else "<div class='fs-muted'>The scans read the same.</div>")
    return (f"{reopened}<div>Scanned {len(view.scans)} times (the whole pages: the <i>Whole page</i> toggle):</div>"
            f"<ul>{rows}</ul>{diff}")


def shared_number(rows: list[dict]) -> str:
    """The number most forms of the class carry (what PHONE_SHARED_BY_CLASS is about)."""
    counts = Counter(r["value"] for r in rows if r["value"])
    return counts.most_common(1)[0][0] if counts else ""


def carries(value: str, number: str) -> bool:
    """The phone is the class's number, or a reading a digit or two away from it (ocr.rules)."""
    return bool(number) and len(value) == len(number) and sum(a != b for a, b in zip(value, number, strict=True)) <= 2


def class_phones_html(ctx: Ctx, view: data.FormView) -> str:
    """The class's phone crops side by side, the forms carrying the shared number framed in red."""
    with ctx.store.tx() as conn:
        rows = data.group_crops(conn, view.school, view.class_name, view.layout.name_of("applicant_phone") or "phone")
    number = shared_number(rows)
    cells = []
    for r in rows:
        cls = "fs-phone" + (" fs-carrier" if carries(r["value"] or "", number) else "")
        cls += " fs-this" if r["form_id"] == view.form_id else ""
        who = "this form · " if r["form_id"] == view.form_id else ""
        tag = " · carries the number" if "fs-carrier" in cls else ""
        cells.append(f"<figure class='{cls}'>{img_tag(ctx.store, r['crop_path'])}<figcaption>{who}"
                     f"{esc(r['form_id'])} {esc(r['name'])} · <code>{esc(r['value'] or '(empty)')}</code>{tag}"
                     "</figcaption></figure>")
    n = sum("fs-carrier" in c for c in cells)
    return (f"<div>The class's phones ({n} of {len(rows)} carry <code>{esc(number)}</code>, framed):</div>"
            f"<div class='fs-phones'>{''.join(cells)}</div>")


def _name_crop(store: Store, page_image: str | None, box_mm) -> str:
    """The printed or corrected name (the box of its zone in the form's layout) cut from the form's
    page image, inline."""
    from PIL import Image

    path = (store.workspace / page_image) if page_image else None
    if path is None or not path.is_file():
        return "<span class='fs-muted'>(no page image)</span>"
    box = box_mm.to_px(NAME_DPI)
    with Image.open(path) as im:
        buf = io.BytesIO()
        im.crop(box).convert("RGB").save(buf, "PNG")
    return f"<img alt='name' src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}'>"


def rare_html(ctx: Ctx, view: data.FormView, corrected: str) -> str:
    name = corrected or view.name
    chars = rare_chars(name)
    zone = view.layout.by_role("corrected_name" if corrected else "printed_name")
    crop = (_name_crop(ctx.store, view.page_image, zone.box) if zone is not None
            else "<span class='fs-muted'>(no name box on this form)</span>")
    return (f"<div class='fs-doubt'>Rare character in the name {esc(name)}: <b>{esc(chars)}</b> "
            "(outside GB 2312). Check it against the crop; an accepted form is marked in the card data "
            f"(冷僻字) and listed for separate submission.</div><div class='fs-crop'>{crop}</div>")


def ack_html(ctx: Ctx, view: data.FormView, corrected_name: str, reject_code: str | None) -> str:
    """The whole-form step: the reasons, their evidence, and the two choices."""
    if not view.form_reasons:
        return "<h4>Nothing flagged on a field: Enter accepts the form</h4>"
    codes = {c for c, _ in view.form_reasons}
    parts = ["<h4>The whole form</h4>", reasons_html(view.form_reasons)]
    if "PHONE_SHARED_BY_CLASS" in codes:
        parts.append(class_phones_html(ctx, view))
    if "RARE_CHARACTER" in codes:
        parts.append(rare_html(ctx, view, corrected_name))
    if "REOPENED" in codes:
        who = esc(view.reopened_by.split(":", 1)[0])
        parts.append(f"<div class='fs-doubt'>Reopened by {who} after it was decided: every field was a step. "
                     "<b>c</b> decides it by the rules with the values you confirmed.</div>")
    parts.append(scans_html(view))
    reject = (f"<b>r</b> + Enter rejects it with {esc(reject_code)} ({esc(EN.get(reject_code, ''))})"
              if reject_code else "<b>r</b> + Enter opens the reasons to reject it")
    parts.append(f"<div class='fs-doubt'>Choose: <b>c</b> + Enter clears these (the form is fine as it is); "
                 f"{reject}.</div>")
    return "".join(parts)

