"""Reason codes: why a form is in review or rejected. A public contract (exports, integrations).

Codes are never renamed; new ones are added. Each has Chinese text for the rejection list and a
severity: `reject` sends the form back to the school when the evidence is confident, `review`
always asks a person, `rescan` waits for the vendor to scan the page again (in colour). Bureau-side codes (seed 003) are listed so returned lists can be imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["reject", "review", "rescan"]


@dataclass(frozen=True)
class Reason:
    code: str
    zh: str
    severity: Severity
    side: Literal["vendor", "bureau"] = "vendor"


_ALL = (
    Reason("PHONE_MISSING", "未填写联系电话", "reject"),
    Reason("PHONE_INVALID", "联系电话不是有效的手机号码", "reject"),
    Reason("PHONE_SHARED_BY_CLASS", "全班使用同一联系电话，数据无效", "reject"),
    Reason("PHOTO_MISSING", "未粘贴照片（6周岁及以上且无预留照片）", "reject"),
    Reason("PHOTO_NOT_LIGHT_BG", "照片不是白底", "reject"),
    Reason("PHOTO_GRAYSCALE", "照片为黑白复印件，不是彩照", "reject"),
    Reason("PHOTO_NO_FACE", "照片中未见人像", "review"),
    Reason("SIGNATURE_MISSING", "申领人未签名", "reject"),
    Reason("GUARDIAN_ID_MISSING", "未满16周岁，未填写代理人身份证号码", "reject"),
    Reason("GUARDIAN_ID_INVALID", "代理人身份证号码无效", "reject"),
    Reason("GUARDIAN_NOT_ADULT", "代理人未满18周岁", "reject"),
    Reason("GUARDIAN_IS_APPLICANT", "代理人身份证号码与申领人相同", "reject"),
    Reason("GUARDIAN_PHONE_MISSING", "未满16周岁，未填写代理人联系电话", "reject"),
    Reason("GUARDIAN_PHONE_INVALID", "代理人联系电话不是有效的手机号码", "reject"),
    Reason("GUARDIAN_RELATION_MISSING", "未勾选代理人与申领人关系", "reject"),
    Reason("GUARDIAN_SIGNATURE_MISSING", "未满16周岁，代理人未签名", "reject"),
    Reason("CORRECTION_WITHOUT_COPY", "更正了姓名或身份证号码，但未粘贴身份证或户口簿复印件", "reject"),
    Reason("CORRECTED_ID_INVALID", "更正的身份证号码校验位错误", "reject"),
    Reason("ID_COPY_MISMATCH", "复印件上的号码与更正的身份证号码不一致", "review"),
    Reason("NAME_CORRECTED", "更正了姓名，须人工核对", "review"),
    Reason("DUPLICATE_ID", "身份证号码在本批次中重复", "review"),
    Reason("RARE_CHARACTER", "姓名含冷僻字（GB 2312 以外），需单独报送", "review"),
    Reason("LOW_CONFIDENCE", "识别置信度低，待人工审核", "review"),
    Reason("UNUSUAL_HANDWRITING", "本表字迹少见，识别把握不足，号码须人工核对", "review"),
    Reason("SCAN_RESOLUTION_LOW", "扫描分辨率低于200dpi，号码须人工核对；请以200dpi以上扫描", "review"),
    Reason("ALIGNMENT_POOR", "页面对齐误差过大，待人工审核", "review"),
    Reason("DUPLICATE_SCAN", "同一表单扫描了多次", "review"),
    Reason("SCANS_DIFFER", "再次扫描的识别结果与审核员填写的不一致", "review"),
    Reason("NOT_IN_ROSTER", "表单不在名册中", "review"),
    Reason("REOPENED", "已决定的表单被重新打开，待重新审核", "review"),
    # why a page waits unidentified, never read with another layout's geometry (pages.reason)
    Reason("LAYOUT_UNKNOWN", "条码所示的表单版式本站没有，页面未识别", "review"),
    Reason("LAYOUT_MISMATCH", "页面的定位标记与条码所示的表单版式不符，页面未识别", "review"),
    Reason("SCANNED_BLACK_AND_WHITE", "黑白扫描页上未找到定位标记和条码（淡墨可能被抹去），页面未识别；请以灰度重新扫描", "review"),
    Reason("PHOTO_SCANNED_IN_GREY", "照片页为黑白扫描，须彩色重新扫描", "rescan"),
    Reason("REVIEWER_REJECTED", "审核员退回", "reject"),
    Reason("NO_PS_PHOTO", "无公安照片", "reject", "bureau"),
    Reason("PHOTO_QUALITY", "照片质量问题", "reject", "bureau"),
    Reason("HAS_FINANCIAL_CARD", "已持有金融社保卡", "reject", "bureau"),
    Reason("AGE_LIMIT", "年龄限制", "reject", "bureau"),
)

REASONS: dict[str, Reason] = {r.code: r for r in _ALL}


def zh(code: str) -> str:
    return REASONS[code].zh if code in REASONS else code


def status_for(codes: list[str] | set[str] | tuple[str, ...]) -> str:
    """`rejected` if any reject-severity code, else `rescan` if any rescan code, else `review` if any
    code, else `accepted`."""
    if any(REASONS[c].severity == "reject" for c in codes):
        return "rejected"
    if any(REASONS[c].severity == "rescan" for c in codes):
        return "rescan"
    return "review" if codes else "accepted"
