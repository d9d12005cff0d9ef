"""The 台账 layout: one column list shared by the ledger export, the template and the import.

`values(row)` gives a case's cells keyed by column, in the units the store keeps (㎡, 元, dates);
the writer converts 亩 columns for display, the import converts back, and a re-imported row is
compared with the store key by key.
"""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter
from typing import Any, Literal

from domain.commands import SITE_FIELDS
from domain.values import PERSONAL_FIELDS, masked
from projections.ledger import LedgerRow

Kind = Literal["text", "date", "mu", "m2", "yuan", "int", "bool", "list", "number"]


@dataclass(frozen=True)
class Column:
    key: str
    name: str  # the header without its unit: used in error messages (第7行 耕地面积：…)
    kind: Kind
    width: float
    imported: bool = True  # False: shown, not read back (序号, 更正次数)

    @property
    def header(self) -> str:
        unit = {"mu": "（亩）", "m2": "（㎡）", "yuan": "（元）"}.get(self.kind, "")
        return self.name + unit


def _c(
    key: str, name: str, kind: Kind = "text", width: float = 10, imported: bool = True
) -> Column:
    return Column(key, name, kind, width, imported)


COLUMNS: tuple[Column, ...] = (
    _c("seq", "序号", "int", 6, imported=False),
    _c("ref", "编号", "text", 16),
    _c("township", "乡镇（街道）", "text", 11),
    _c("village", "村", "text", 10),
    _c("location", "位置", "text", 18),
    _c("lon", "经度", "number", 11),
    _c("lat", "纬度", "number", 10),
    _c("project_name", "项目名称", "text", 22),
    _c("party_name", "当事人", "text", 20),
    _c("party_kind", "当事人类型", "text", 8),
    _c("party_id_no", "证件号码", "text", 24),
    _c("party_phone", "联系电话", "text", 15),
    _c("source", "线索来源", "text", 10),
    _c("found_on", "发现日期", "date", 11),
    _c("violation_types", "违法类型", "list", 30),
    _c("land_use", "用途", "text", 10),
    _c("area_m2", "占地面积", "mu", 10),
    _c("cultivated_m2", "耕地面积", "mu", 10),
    _c("basic_farmland_m2", "永久基本农田面积", "mu", 12),
    _c("eco_redline_m2", "生态保护红线面积", "mu", 12),
    _c("building_area_m2", "建筑面积", "m2", 10),
    _c("major_hazard", "重大事故隐患", "bool", 8),
    _c("hazard_note", "隐患说明", "text", 18),
    _c("unit", "责任单位", "text", 18),
    _c("state", "状态", "text", 8),
    _c("stopped_on", "制止日期", "date", 11),
    _c("order_no", "责令停止通知书编号", "text", 20),
    _c("stop_outcome", "制止结果", "text", 8),
    _c("dismissed_on", "排除日期", "date", 11),
    _c("dismiss_reason", "排除原因", "text", 8),
    _c("filed_on", "立案日期", "date", 11),
    _c("case_no", "立案编号", "text", 29),
    _c("handlers", "承办人", "list", 12),
    _c("decided_on", "处罚决定日期", "date", 11),
    _c("decision_no", "处罚决定书编号", "text", 29),
    _c("fine_yuan", "罚款", "yuan", 12),
    _c("confiscated_income_yuan", "没收违法所得", "yuan", 12),
    _c("demolish_m2", "限期拆除面积", "m2", 10),
    _c("confiscate_building_m2", "没收建筑面积", "m2", 10),
    _c("police_on", "移送公安日期", "date", 11),
    _c("police_persons", "移送公安人数", "int", 7),
    _c("police_doc_no", "移送公安文号", "text", 16),
    _c("discipline_on", "移送纪检监察日期", "date", 11),
    _c("discipline_persons", "移送纪检监察人数", "int", 7),
    _c("discipline_doc_no", "移送纪检监察文号", "text", 16),
    _c("other_agencies", "移送其他部门", "list", 12),
    _c("other_on", "移送其他部门日期", "date", 11),
    _c("ordered_on", "整改要求日期", "date", 11),
    _c("measures", "整改措施", "list", 14),
    _c("due_on", "整改期限", "date", 11),
    _c("demolished_m2", "拆除面积", "m2", 10),
    _c("restored_m2", "复耕面积", "mu", 10),
    _c("fine_paid_yuan", "已缴罚没款", "yuan", 12),
    _c("permits", "补办手续（宗）", "int", 8),
    _c("permit_area_m2", "补办面积", "m2", 10),
    _c("rectified_on", "整改到位日期", "date", 11),
    _c("closed_on", "销号日期", "date", 11),
    _c("reopened_on", "重开日期", "date", 11, imported=False),
    _c("flags", "标记", "list", 12),
    _c("corrections", "更正次数", "int", 6, imported=False),
    _c("note", "备注", "text", 18),
)
BY_KEY: dict[str, Column] = {column.key: column for column in COLUMNS}

# Cells a staff member types once per case (find_site's facts); the others follow from the
# milestone columns.
SITE_KEYS: tuple[str, ...] = SITE_FIELDS


def _referral(agency: str, part: str) -> Callable[[LedgerRow], Any]:
    """The first date, summed persons or joined document numbers of one agency's referrals."""

    def get(row: LedgerRow) -> Any:
        if not row.referrals:
            return None
        found = [r for r in row.referrals if r.agency == agency]
        if not found:
            return None
        if part == "on":
            return min(r.on for r in found)
        if part == "persons":
            return sum(r.persons for r in found)
        return "、".join(r.doc_no for r in found if r.doc_no)

    return get


def _other_agencies(row: LedgerRow) -> Any:
    if not row.referrals:
        return ()
    return tuple(dict.fromkeys(r.agency for r in row.referrals if r.agency not in _OWN_COLUMNS))


def _other_on(row: LedgerRow) -> Any:
    if not row.referrals:
        return None
    found = [r.on for r in row.referrals if r.agency not in _OWN_COLUMNS]
    return min(found) if found else None


_OWN_COLUMNS = ("公安", "纪检监察")
_SPECIAL: dict[str, Callable[[LedgerRow], Any]] = {
    "ref": attrgetter("case.ref"),
    "found_on": attrgetter("case.found_on"),
    "state": attrgetter("state"),
    "police_on": _referral("公安", "on"),
    "police_persons": _referral("公安", "persons"),
    "police_doc_no": _referral("公安", "doc_no"),
    "discipline_on": _referral("纪检监察", "on"),
    "discipline_persons": _referral("纪检监察", "persons"),
    "discipline_doc_no": _referral("纪检监察", "doc_no"),
    "other_agencies": _other_agencies,
    "other_on": _other_on,
    "flags": lambda row: tuple(dict.fromkeys(row.flags)),
    # A reopened case shows the current cycle: no dismissal date, so no dismissal reason.
    "dismiss_reason": lambda row: row.dismiss_reason if row.dismissed_on else "",
}


def getter(key: str) -> Callable[[LedgerRow], Any]:
    """How a column reads a ledger row: site facts from the case, the rest from the row."""
    if key in _SPECIAL:
        return _SPECIAL[key]
    if key in SITE_KEYS:
        return attrgetter(f"case.site.{key}")
    return attrgetter(key)


GETTERS: dict[str, Callable[[LedgerRow], Any]] = {
    c.key: getter(c.key) for c in COLUMNS if c.key != "seq"
}
# The ledger's personal columns (DESIGN: masked unless the user asks otherwise and may).
PERSONAL = tuple(k for k in GETTERS if k in PERSONAL_FIELDS)


def values(row: LedgerRow, *, unmasked: bool = False) -> dict[str, Any]:
    """A case's cells, keyed by column (序号 is the writer's), in stored units (㎡, 元, dates);
    personal data masked unless `unmasked`."""
    found = {key: get(row) for key, get in GETTERS.items()}
    if not unmasked:
        for key in PERSONAL:
            found[key] = masked(key, found[key])
    return found


def is_blank(value: Any) -> bool:
    """Blank, zero and empty lists are the same cell: a sheet cannot tell them apart."""
    return (
        value is None
        or value == ""
        or value == ()
        or (isinstance(value, Decimal | int) and not isinstance(value, bool) and value == 0)
    )
