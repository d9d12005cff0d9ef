"""Value types of the domain: enumerations, dates, amounts, and unit conversions."""

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

CHINA = timezone(timedelta(hours=8), "CST")

Source = Literal["巡查", "卫片", "举报", "上级交办", "自查", "其他"]
PartyKind = Literal["个人", "单位", "村集体", "其他", ""]
ViolationType = Literal[
    "无规划许可", "未按许可建设", "占用耕地", "占用永久基本农田", "侵占生态保护红线", "其他"
]
StopOutcome = Literal["停工", "恢复原状", "制止无效", ""]
DismissReason = Literal["非违法", "重复", "不属实", "其他"]
Agency = Literal["公安", "纪检监察", "住建", "法院", "乡镇政府", "其他"]
Measure = Literal["拆除复耕", "补办手续", "罚款", "没收", "其他"]
FlagKind = Literal["典型案件", "挂牌督办", "顶风作案", "屡禁不止", "重大违法", "严重违反产业政策"]
Role = Literal["所员", "执法大队", "审计", "管理员"]

VIOLATION_TYPES: tuple[str, ...] = get_args(ViolationType)

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_iso_date(value: Any) -> Any:
    """Accept only YYYY-MM-DD text (pydantic alone would take 20220215 as a Unix time)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value.strip()):
        raise ValueError("iso_date")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:  # 2022-02-30: the message must stay Chinese
        raise ValueError("iso_date") from None


# DESIGN's bounds, checked at the door (each message names the bound).
MAX_AREA_M2 = Decimal(100_000_000)
MAX_YUAN = Decimal(10_000_000_000)
MAX_PERSONS = 10_000
MAX_TEXT = 2_000
MAX_LONG_TEXT = 10_000  # note, reason
MAX_ITEMS = 100  # the items of a list field (violation types, measures, handlers)
# A number written as text: digits, one point, an exponent; no "1_000", no "Infinity".
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,9})?")


def number_text(value: Any) -> Any:
    """Before pydantic parses a number: text must be a plain decimal (Python's Decimal also
    reads "1_000" and "Infinity"); true and false are not numbers."""
    if isinstance(value, bool):
        raise ValueError("not_a_number")
    if isinstance(value, str) and not _NUMBER_TEXT.fullmatch(value.strip()):
        raise ValueError("not_a_number")
    return value


def decimal_places(value: Decimal) -> int:
    """Places after the point, trailing zeros not counted, however the number is written
    (1e-7 has seven), computed without writing the number out (1e-99999999 is tiny)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    kept = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + kept)) if any(digits) else 0


def _bounded(bound: Decimal, unit: str) -> Any:
    def check(value: Decimal) -> Decimal:
        """An amount is exact in hundredths (元 to the 分, ㎡ to 0.01), at most the bound, and
        kept in fixed point (1e3 → 1000, -0.00 → 0.00)."""
        text = str(value)
        if "E" not in text:  # written in fixed point: nearly every amount, checked on its text
            fraction = text.partition(".")[2]
            if len(fraction) > 2 and fraction[2:].strip("0"):
                raise ValueError("decimal_places")
            if value > bound:
                raise ValueError(f"too_large:{bound:,}{unit}")
            if len(fraction) > 2:
                value = value.quantize(CENT)
            return abs(value) if text[0] == "-" else value
        if decimal_places(value) > 2:
            raise ValueError("decimal_places")
        if value > bound:
            raise ValueError(f"too_large:{bound:,}{unit}")
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if value.is_zero():
            return abs(value) if -2 <= exponent <= 0 else Decimal(0)
        if exponent > 0:
            return value.quantize(Decimal(1))
        if exponent < -2:
            return value.quantize(CENT)
        return value

    return check


def plain_text(value: str, bound: int = MAX_TEXT, *, lines: bool = False) -> str:
    """A text of at most `bound` characters without control characters (a note or a reason
    may hold line breaks and tabs)."""
    if len(value) > bound:
        raise ValueError(f"too_long:{bound}")
    if value.isprintable():  # nearly every text: one pass in C
        return value
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs") and not (lines and char in "\n\r\t"):
            raise ValueError(f"control:U+{ord(char):04X}")
    return value


# Characters nobody sees: zero-width spaces and joiners, soft hyphens, direction marks, BOMs.
_INVISIBLE = {"Cf", "Zl", "Zp"}


def normal_ref(value: Any) -> Any:
    """A ref as it is compared and stored: Unicode NFKC (full-width Ｔ－０００１ is T-0001),
    invisible characters removed, trimmed; control characters and broken text refused."""
    if not isinstance(value, str):
        return value
    if value.isascii() and value.isprintable():  # nearly every ref: nothing to normalise
        return value.strip()
    if any(unicodedata.category(ch) == "Cs" for ch in value):
        raise ValueError("control:encoding")
    text = unicodedata.normalize("NFKC", value)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _INVISIBLE)
    # Checked before trimming: str.strip() takes U+001C–U+001F and U+0085 for spaces, and
    # would make a ref of them the blank ref (a generated one) or another case's ref.
    return plain_text(text).strip()


def _coordinate(bound: int) -> Any:
    def check(value: Decimal) -> Decimal:
        if not -bound <= value <= bound:
            raise ValueError(f"out_of_range:{bound}")
        return value

    return check


IsoDate = Annotated[date, BeforeValidator(parse_iso_date)]
# Text is stripped by the models' own setting (str_strip_whitespace), in pydantic's core.
# Checked in pydantic's core (a validator in Python on every text field doubled the time a
# command takes to validate): a length bound, and no control characters (C0, DEL, C1); a note
# or a reason may hold line breaks and tabs.
CONTROL = "\x00-\x1f\x7f-\x9f"
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT, pattern=f"^[^{CONTROL}]*$")]
LongText = Annotated[
    str,
    StringConstraints(
        max_length=MAX_LONG_TEXT, pattern="^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    ),
]
Ref = Annotated[str, BeforeValidator(normal_ref)]
Persons = Annotated[int, Field(ge=0, le=MAX_PERSONS, strict=True)]
# Money in 元 and areas in ㎡, to the 分 and the 0.01 ㎡: exact as integers of hundredths.
Area = Annotated[
    Decimal,
    BeforeValidator(number_text),
    Field(ge=0, allow_inf_nan=False),
    AfterValidator(_bounded(MAX_AREA_M2, "㎡")),
]
Money = Annotated[
    Decimal,
    BeforeValidator(number_text),
    Field(ge=0, allow_inf_nan=False),
    AfterValidator(_bounded(MAX_YUAN, "元")),
]
Amount = Area
Longitude = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    AfterValidator(_coordinate(180)),
]
Latitude = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    AfterValidator(_coordinate(90)),
]
Coordinate = Longitude

CENT = Decimal("0.01")


def mu_to_m2(mu: Decimal) -> Decimal:
    """㎡ = 亩 × 10000 / 15, rounded half-up to 0.01 ㎡."""
    return (mu * 10000 / 15).quantize(CENT, rounding=ROUND_HALF_UP)


def m2_to_mu(m2: Decimal) -> Decimal:
    """亩 rounded half-up to two places (3333.33 ㎡ is 5.00 亩)."""
    return (m2 * 15 / 10000).quantize(CENT, rounding=ROUND_HALF_UP)


def two_places(value: Decimal) -> str:
    try:
        return str(value.quantize(CENT, rounding=ROUND_HALF_UP))
    except ArithmeticError:  # more digits than a Decimal holds: stored before the bounds
        return format(value, "f")


def china_today() -> date:
    return datetime.now(CHINA).date()


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 as datetime.fromisoformat reads it; without an offset it is China time."""
    moment = datetime.fromisoformat(text)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=CHINA)
    moment.astimezone(UTC)  # 0001-01-01T00:00+08:00 is before the first UTC moment
    return moment


# Chinese names of fields, for messages and headers.
FIELD_LABELS: dict[str, str] = {
    "cmd": "命令",
    "ref": "编号",
    "on": "日期",
    "source": "线索来源",
    "township": "乡镇（街道）",
    "village": "村",
    "location": "位置",
    "lon": "经度",
    "lat": "纬度",
    "project_name": "项目名称",
    "party_name": "当事人",
    "party_kind": "当事人类型",
    "party_id_no": "证件号码",
    "party_phone": "联系电话",
    "violation_types": "违法类型",
    "land_use": "用途",
    "area_m2": "占地面积",
    "cultivated_m2": "耕地面积",
    "basic_farmland_m2": "永久基本农田面积",
    "eco_redline_m2": "生态保护红线面积",
    "building_area_m2": "建筑面积",
    "major_hazard": "重大事故隐患",
    "hazard_note": "隐患说明",
    "unit": "责任单位",
    "note": "备注",
    "reason": "原因",
    "order_no": "责令停止通知书编号",
    "outcome": "制止结果",
    "case_no": "立案编号",
    "handlers": "承办人",
    "decision_no": "处罚决定书编号",
    "fine_yuan": "罚款",
    "confiscated_income_yuan": "没收违法所得",
    "demolish_m2": "限期拆除面积",
    "confiscate_building_m2": "没收建筑面积",
    "agency": "移送机关",
    "doc_no": "移送文号",
    "persons": "移送人数",
    "measures": "整改措施",
    "due_on": "整改期限",
    "demolished_m2": "拆除面积",
    "restored_m2": "复耕面积",
    "fine_paid_yuan": "已缴罚没款",
    "permit_doc_no": "补办手续文号",
    "permit_area_m2": "补办面积",
    "verified_by": "验收人",
    "basis": "销号依据",
    "kind": "标记类型",
    "staff_id": "工号",
    "name": "姓名",
    "role": "角色",
    "position": "职务",
    "office_phone": "办公电话",
    "mobile": "手机",
    "phase": "阶段",
}


_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """Text safe to print on a terminal: a control character (an escape sequence that would
    move the cursor or erase a line), a direction override or an undecodable byte is shown as
    its code (\\x1b), never sent raw."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        code = ord(char)
        if char in _BIDI or unicodedata.category(char) in ("Cc", "Cs"):
            if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
                out.append(f"\\x{code - 0xDC00:02x}")
            else:
                out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def label(field: str) -> str:
    return FIELD_LABELS.get(field, field)


def show_amount(field: str, value: Decimal) -> str:
    """An amount with its unit, for messages: 200.00㎡, 5000.00元."""
    unit = "元" if field.endswith("_yuan") else "㎡"
    return f"{two_places(value)}{unit}"


def mask_id(text: str) -> str:
    """110101199001011234 → 110101********1234: region and last four stay readable."""
    return text[:6] + "*" * (len(text) - 10) + text[-4:] if len(text) > 10 else "*" * len(text)


def mask_phone(text: str) -> str:
    """13812345678 → 138****5678."""
    return text[:3] + "*" * (len(text) - 7) + text[-4:] if len(text) > 7 else "*" * len(text)


# Personal data: these fields are masked wherever they are shown or exported, unless the user
# asks otherwise and may (Campaign.check_unmasking). A campaign contact's mobile (附件1,
# `set_contact`) is not among them: the list exists so that colleagues can call its contacts,
# who gave the number for that; it holds no ID numbers.
PERSONAL_FIELDS = {"party_id_no": mask_id, "party_phone": mask_phone}


def masked(field: str, text: str) -> str:
    """The one masking policy: a personal field's text as shown to a user who may not see it."""
    mask = PERSONAL_FIELDS.get(field)
    return mask(text) if mask and text else text
