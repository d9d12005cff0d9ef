"""Value types of the domain: enumerations, dates, amounts, and unit conversions."""

import re
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field

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


def _hundredths(value: Decimal) -> Decimal:
    """An amount is exact in hundredths (元 to the 分, ㎡ to 0.01) and at most 13 whole digits;
    it is kept in fixed point (1e3 → 1000, -0.00 → 0.00). Checked on its text: pydantic's own
    max_digits/decimal_places checks cost three times the rest of a find_site's validation."""
    text = str(value)
    if "E" in text or text.startswith("-"):
        value = Decimal(format(abs(value) if value.is_zero() else value, "f"))
        text = str(value)
    whole, _, fraction = text.partition(".")
    if len(fraction.rstrip("0")) > 2:
        raise ValueError("decimal_places")
    if len(whole) > 13:
        raise ValueError("too_large")
    return value


IsoDate = Annotated[date, BeforeValidator(parse_iso_date)]
# Text is stripped by the models' own setting (str_strip_whitespace), in pydantic's core.
Text = str
# Money in 元 and areas in ㎡, to the 分 and the 0.01 ㎡: exact as integers of hundredths.
Amount = Annotated[Decimal, Field(ge=0, allow_inf_nan=False), AfterValidator(_hundredths)]
Coordinate = Annotated[Decimal, Field(allow_inf_nan=False)]

CENT = Decimal("0.01")


def mu_to_m2(mu: Decimal) -> Decimal:
    """㎡ = 亩 × 10000 / 15, rounded half-up to 0.01 ㎡."""
    return (mu * 10000 / 15).quantize(CENT, rounding=ROUND_HALF_UP)


def m2_to_mu(m2: Decimal) -> Decimal:
    """亩 rounded half-up to two places (3333.33 ㎡ is 5.00 亩)."""
    return (m2 * 15 / 10000).quantize(CENT, rounding=ROUND_HALF_UP)


def two_places(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def china_today() -> date:
    return datetime.now(CHINA).date()


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 as datetime.fromisoformat reads it; without an offset it is China time."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA)


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
# asks otherwise and may (Campaign.check_unmasking). `mobile` is a contact's, in 附件1.
PERSONAL_FIELDS = {"party_id_no": mask_id, "party_phone": mask_phone, "mobile": mask_phone}


def masked(field: str, text: str) -> str:
    """The one masking policy: a personal field's text as shown to a user who may not see it."""
    mask = PERSONAL_FIELDS.get(field)
    return mask(text) if mask and text else text
