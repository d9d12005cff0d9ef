"""Commands: one pydantic model per JSON `cmd`, validated once, with Chinese error messages.

A command model holds exactly the fields of its event; the event class adds the envelope
(who, which aggregate, when recorded). Unknown fields are rejected, so a typo never drops data.
"""

import unicodedata
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Optional, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    create_model,
)
from pydantic_core import ErrorDetails

from domain.errors import DomainError
from domain.values import (
    MAX_ITEMS,
    Agency,
    Area,
    DismissReason,
    FlagKind,
    IsoDate,
    Latitude,
    Longitude,
    LongText,
    Measure,
    Money,
    PartyKind,
    Persons,
    Ref,
    Role,
    Source,
    StopOutcome,
    Text,
    ViolationType,
    label,
    mu_to_m2,
    number_text,
    printable,
)


class Command(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, defer_build=True, str_strip_whitespace=True
    )
    NAME: ClassVar[str]


class CaseCommand(Command):
    ref: Ref
    on: IsoDate


class FindSite(CaseCommand):
    NAME = "find_site"
    ref: Ref = ""  # generated from the campaign's prefix when absent
    source: Source
    township: Text
    village: Text = ""
    location: Text = ""
    lon: Longitude | None = None
    lat: Latitude | None = None
    project_name: Text = ""
    party_name: Text = ""
    party_kind: PartyKind = ""
    party_id_no: Text = ""
    party_phone: Text = ""
    violation_types: tuple[ViolationType, ...] = Field(min_length=1, max_length=MAX_ITEMS)
    land_use: Text = ""
    area_m2: Area
    cultivated_m2: Area = Decimal(0)
    basic_farmland_m2: Area = Decimal(0)
    eco_redline_m2: Area = Decimal(0)
    building_area_m2: Area = Decimal(0)
    major_hazard: StrictBool = False
    hazard_note: Text = ""
    unit: Text
    note: LongText = ""


# The facts of a site that a correction may change: everything find_site records but its identity.
SITE_FIELDS: tuple[str, ...] = tuple(
    name for name in FindSite.model_fields if name not in CaseCommand.model_fields
)


def _optional(name: str) -> Any:
    """A site field's type and constraints (≥ 0, not empty, stripped), or None."""
    info = FindSite.model_fields[name]
    kind = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return Optional[kind]  # noqa: UP045


_optional_site_fields: dict[str, Any] = {name: (_optional(name), None) for name in SITE_FIELDS}
# Every site field, optional: a correction gives only the fields it changes.
_CorrectSiteBase: Any = create_model(
    "_CorrectSiteBase", __base__=CaseCommand, **_optional_site_fields
)


class CorrectSite(_CorrectSiteBase):
    NAME = "correct_site"
    reason: LongText = Field(min_length=1)

    def changes(self) -> dict[str, Any]:
        return {
            name: getattr(self, name) for name in SITE_FIELDS if getattr(self, name) is not None
        }


class Stop(CaseCommand):
    NAME = "stop"
    order_no: Text = ""
    outcome: StopOutcome = ""


class Dismiss(CaseCommand):
    NAME = "dismiss"
    reason: DismissReason


class FileCase(CaseCommand):
    NAME = "file_case"
    case_no: Text = Field(min_length=1)
    unit: Text = ""
    handlers: tuple[Text, ...] = Field(default=(), max_length=MAX_ITEMS)


class DecidePenalty(CaseCommand):
    NAME = "decide_penalty"
    decision_no: Text = Field(min_length=1)
    fine_yuan: Money
    confiscated_income_yuan: Money = Decimal(0)
    demolish_m2: Area = Decimal(0)
    confiscate_building_m2: Area = Decimal(0)


class Refer(CaseCommand):
    NAME = "refer"
    agency: Agency
    doc_no: Text = ""
    persons: Persons = 0
    reason: LongText = ""


class OrderRectification(CaseCommand):
    NAME = "order_rectification"
    measures: tuple[Measure, ...] = Field(min_length=1, max_length=MAX_ITEMS)
    due_on: IsoDate


class RecordRectification(CaseCommand):
    NAME = "record_rectification"
    demolished_m2: Area = Decimal(0)
    restored_m2: Area = Decimal(0)
    fine_paid_yuan: Money = Decimal(0)
    permit_doc_no: Text = ""
    permit_area_m2: Area = Decimal(0)
    note: LongText = ""


class CompleteRectification(CaseCommand):
    NAME = "complete_rectification"
    verified_by: Text = ""


class CloseOut(CaseCommand):
    NAME = "close_out"
    basis: Text = ""


class Reopen(CaseCommand):
    NAME = "reopen"
    reason: LongText = Field(min_length=1)


class Flag(CaseCommand):
    NAME = "flag"
    kind: FlagKind
    note: LongText = ""


class CampaignCommand(Command):
    on: IsoDate | None = None  # the business date; today when not given


class SetContact(CampaignCommand):
    NAME = "set_contact"
    unit: Text
    name: Text = Field(min_length=1)
    position: Text = ""
    office_phone: Text = ""
    mobile: Text = ""


class RegisterStaff(CampaignCommand):
    NAME = "register_staff"
    staff_id: Text = Field(min_length=1)
    name: Text = Field(min_length=1)
    unit: Text
    role: Role


class SetDeadline(CampaignCommand):
    NAME = "set_deadline"
    phase: Text
    due_on: IsoDate


CASE_COMMANDS: tuple[type[CaseCommand], ...] = (
    FindSite,
    CorrectSite,
    Stop,
    Dismiss,
    FileCase,
    DecidePenalty,
    Refer,
    OrderRectification,
    RecordRectification,
    CompleteRectification,
    CloseOut,
    Reopen,
    Flag,
)
CAMPAIGN_COMMANDS: tuple[type[CampaignCommand], ...] = (SetContact, RegisterStaff, SetDeadline)
COMMANDS: dict[str, type[Command]] = {c.NAME: c for c in (*CASE_COMMANDS, *CAMPAIGN_COMMANDS)}
# `area_mu` may stand for `area_m2` (likewise every area of a command): ㎡ = 亩 × 10000 / 15.
# Any other `_mu` key is left in place, to be rejected as an unknown field.
AREAS_IN_MU: dict[str, dict[str, str]] = {
    name: {f[:-3] + "_mu": f for f in model.model_fields if f.endswith("_m2")}
    for name, model in COMMANDS.items()
}


def parse_command(data: Any) -> Command:
    """A JSON object → its validated command, or a DomainError in Chinese naming the field."""
    if not isinstance(data, dict):
        raise DomainError('命令应为一个 JSON 对象，例如 {"cmd": "find_site", …}', field="cmd")
    fields = dict(data)
    name = fields.pop("cmd", None)
    if name is None:
        raise DomainError("缺少字段 cmd（命令名）", field="cmd")
    model = COMMANDS.get(name) if isinstance(name, str) else None
    if model is None:
        raise DomainError(f"未知命令 “{name}”，可用的命令：{'、'.join(COMMANDS)}", field="cmd")
    for key in ("lon", "lat"):  # JSON numbers (the store itself keeps them as exact text)
        if isinstance(fields.get(key), str | bool):
            value = _brief(fields[key])
            raise DomainError(f"{label(key)}：“{value}”应为数字（不加引号）", field=key)
    areas_in_mu = AREAS_IN_MU[name]
    typed_in_mu: dict[str, tuple[str, Any]] = {}  # ㎡ field → the 亩 key and value as typed
    for key in areas_in_mu.keys() & fields.keys():
        target = areas_in_mu[key]
        if target in fields:
            raise DomainError(f"{label(target)}：{key} 与 {target} 只能填一个", field=target)
        value = fields.pop(key)
        typed_in_mu[target] = (key, value)
        try:
            number_text(value)
            fields[target] = mu_to_m2(Decimal(str(value).strip()))
        except (ArithmeticError, ValueError):
            fields[target] = value  # let the field's own check name the bad value
    _refuse_edge_controls(fields)
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        problems = error.errors()
        # A list whose items are all wrong is also "too short": say only what is wrong with them.
        item_errors = {p["loc"][0] for p in problems if len(p["loc"]) > 1}
        problems = [
            p for p in problems if not (p["type"] == "too_short" and p["loc"][0] in item_errors)
        ]
        message = "；".join(_explain_typed(problem, name, typed_in_mu) for problem in problems)
        loc = problems[0]["loc"]
        raise DomainError(message, field=str(loc[0]) if loc else "") from None


LINES = {"note", "reason"}  # the long texts, which may hold line breaks and tabs


def _refuse_edge_controls(fields: dict[str, Any]) -> None:
    """A control character at a text's end: the models trim surrounding white space before their
    pattern looks, and a next-line (U+0085), a vertical tab or a form feed count as white space
    there, so "\x85" became an empty text, recorded. DESIGN: a text holds no control character."""
    for key, value in fields.items():
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str) or text.isprintable():
                continue
            ends = text[: len(text) - len(text.lstrip())] + text[len(text.rstrip()) :]
            for char in ends:
                if unicodedata.category(char) == "Cc" and not (key in LINES and char in "\n\r\t"):
                    raise DomainError(
                        f"{label(key)}：“{_brief(text)}”含有控制字符 U+{ord(char):04X}，不能记录",
                        field=key,
                    )


def _explain_typed(
    error: ErrorDetails, command: str, typed_in_mu: dict[str, tuple[str, Any]]
) -> str:
    """A problem of an area given in 亩 is told in 亩, as typed, not in the ㎡ it became."""
    field = str(error["loc"][0]) if error["loc"] else ""
    if field not in typed_in_mu:
        return explain(error, command)
    key, typed = typed_in_mu[field]
    told = explain(cast(ErrorDetails, {**error, "input": typed}), command)
    return told.replace(label(field), f"{label(field)}（{key}，亩）", 1)


# What a list field looks like in JSON, for the message when something else was given.
LIST_EXAMPLES = {
    "violation_types": '["占用耕地"]',
    "measures": '["拆除复耕", "罚款"]',
    "handlers": '["张三", "李四"]',
}


def explain(error: ErrorDetails, command: str = "") -> str:
    """One pydantic error → a Chinese sentence naming the field and the reason."""
    loc = error["loc"]
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    field = str(loc[0]) if loc else ""
    name = label(field) + (
        f"第{int(loc[1]) + 1}项" if len(loc) > 1 and isinstance(loc[1], int) else ""
    )
    shown = f"“{_brief(value)}”" if not isinstance(value, dict | list | tuple) else ""
    if kind == "missing":
        return f"{name}（{field}）：必填，{command} 命令缺少此字段"
    if value is None and len(loc) == 1:  # JSON null
        model = COMMANDS.get(command)
        info = model.model_fields.get(field) if model else None
        if info is not None and info.is_required():
            return f"{name}（{field}）：必填，不能为 null"
        return f"{name}（{field}）：不能为 null（不填请省略此字段）"
    if kind == "extra_forbidden":
        return f"未知字段 “{field}”（{command} 命令没有这个字段，请检查拼写）"
    if kind == "literal_error":
        return f"{name}：{shown}不是有效值，可选：{_choices(ctx.get('expected', ''))}"
    if kind in ("decimal_parsing", "decimal_type", "finite_number"):
        return f"{name}：{shown}不是数字"
    reason = str(ctx.get("error", ""))
    if kind == "value_error":
        found = _explain_value(name, shown, reason, value)
        if found:
            return found
    if kind == "greater_than_equal":
        return f"{name}：{shown}不能小于 {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"{name}：{shown}超过上限 {ctx.get('le'):,}"
    if kind == "too_long":
        return f"{name}：最多 {ctx.get('max_length')} 项"
    if kind == "string_too_long":
        limit = int(ctx.get("max_length", 0))
        return f"{name}：长 {len(str(value)):,} 个字符，超过上限 {limit:,} 个字符"
    if kind == "string_pattern_mismatch":
        control = next((ch for ch in str(value) if unicodedata.category(ch) == "Cc"), "")
        return f"{name}：{shown}含有控制字符 U+{ord(control or '?'):04X}，不能记录"
    if kind == "string_unicode":
        return f"{name}：{shown}含有无效字符（不是有效的 UTF-8 文本）"
    if kind == "value_error" and "iso_date" in str(ctx.get("error", "")):
        return f"{name}：{shown}不是有效日期，应为 YYYY-MM-DD"
    if kind.startswith("date"):
        return f"{name}：{shown}不是有效日期，应为 YYYY-MM-DD"
    if kind in ("bool_type", "bool_parsing"):
        return f"{name}：{shown}应为 true 或 false"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{name}：{shown}应为整数"
    if kind == "string_type":
        return f"{name}：{shown}应为文本（加引号）"
    if kind in ("tuple_type", "list_type"):
        return f"{name}：{shown}应为数组，例如 {LIST_EXAMPLES.get(field, '[…]')}"
    if kind in ("too_short", "string_too_short"):
        return f"{name}：不能为空"
    return f"{name}：{shown}格式不对（{error['msg']}）"


def _brief(value: Any) -> str:
    """A rejected value as a message shows it: printable, and not ten thousand characters."""
    text = printable(str(value))
    return text if len(text) <= 40 else text[:40] + "…"


def _explain_value(name: str, shown: str, reason: str, value: Any) -> str:
    """The Chinese sentence for one of our own validators' reasons (domain.values)."""
    code, _, detail = reason.removeprefix("Value error, ").partition(":")
    if code == "decimal_places":
        return f"{name}：{shown}最多两位小数（元到分，㎡到0.01）"
    if code == "too_large":
        return f"{name}：{shown}超过上限 {detail}"
    if code == "not_a_number":
        return f"{name}：{shown}不是数字"
    if code == "too_long":
        return f"{name}：长 {len(str(value)):,} 个字符，超过上限 {int(detail):,} 个字符"
    if code == "control" and detail == "encoding":
        return f"{name}：{shown}含有无效字符（不是有效的 UTF-8 文本）"
    if code == "control":
        return f"{name}：{shown}含有控制字符 {detail}，不能记录"
    if code == "out_of_range":
        return f"{name}：{shown}应在 -{detail} 到 {detail} 之间"
    if code == "iso_date":
        return f"{name}：{shown}不是有效日期，应为 YYYY-MM-DD"
    return ""


def _choices(expected: str) -> str:
    return "、".join(
        part.strip(" '") for part in expected.replace(" or ", ",").split(",") if part.strip(" '")
    )
