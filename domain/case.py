"""The Case aggregate: its state folded from events, and the rules each command must pass."""

from dataclasses import MISSING, dataclass, fields
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain import commands as c
from domain import events as e
from domain.campaign import Campaign
from domain.errors import DomainError
from domain.fast import assembled
from domain.values import MAX_AREA_M2, MAX_YUAN, label, show_amount

# The derived states, in DESIGN's order of precedence.
FOUND, STOPPED, FILED, DECIDED, RECTIFYING, RECTIFIED, CLOSED_OUT, DISMISSED = (
    "已发现",
    "已制止",
    "已立案",
    "已处罚",
    "整改中",
    "已整改",
    "已销号",
    "已排除",
)
STATES = (FOUND, STOPPED, FILED, DECIDED, RECTIFYING, RECTIFIED, CLOSED_OUT, DISMISSED)


@dataclass(frozen=True)
class Case:
    id: UUID
    version: int
    ref: str
    found_on: date
    site: c.FindSite  # as found, with every correction applied
    stopped: bool = False
    dismissed: bool = False
    filed: bool = False
    decided: bool = False
    rectifying: bool = False  # rectification ordered or recorded
    rectified: bool = False  # rectification complete
    closed_out: bool = False
    # What the rectification records add up to: each total is bounded like one amount.
    demolished_m2: Decimal = Decimal(0)
    restored_m2: Decimal = Decimal(0)
    fine_paid_yuan: Decimal = Decimal(0)
    permit_area_m2: Decimal = Decimal(0)

    @classmethod
    def found(cls, event: e.SiteFound) -> "Case":
        """A new case, from the event that found it (a FindSite: it stands for the site)."""
        return assembled(
            cls,
            {
                **_NO_MILESTONES,
                "id": event.originator_id,
                "version": 1,
                "ref": event.ref,
                "found_on": event.on,
                "site": event,
            },
        )

    def evolved(self, changes: dict[str, Any]) -> "Case":
        """This state with some fields changed: `dataclasses.replace` without its checks (see
        domain/fast.py), as the fold runs once per event; the new state shares the old one's
        values, which are valid already. (A dict, not keywords: packing them cost a third.)"""
        return assembled(Case, {**self.__dict__, **changes})

    @property
    def state(self) -> str:
        return derive_state(
            closed_out=self.closed_out,
            dismissed=self.dismissed,
            rectified=self.rectified,
            rectifying=self.rectifying,
            decided=self.decided,
            filed=self.filed,
            stopped=self.stopped,
        )


def derive_state(
    *,
    closed_out: bool,
    dismissed: bool,
    rectified: bool,
    rectifying: bool,
    decided: bool,
    filed: bool,
    stopped: bool,
) -> str:
    """DESIGN's order: closed out, dismissed, rectified, rectifying, decided, filed, stopped."""
    if closed_out:
        return CLOSED_OUT
    if dismissed:
        return DISMISSED
    if rectified:
        return RECTIFIED
    if rectifying:
        return RECTIFYING
    if decided:
        return DECIDED
    if filed:
        return FILED
    return STOPPED if stopped else FOUND


# The amounts a case's rectification records add up, and the bound on each total.
RECORD_TOTALS: dict[str, Decimal] = {
    "demolished_m2": MAX_AREA_M2,
    "restored_m2": MAX_AREA_M2,
    "fine_paid_yuan": MAX_YUAN,
    "permit_area_m2": MAX_AREA_M2,
}

_NO_MILESTONES = {f.name: f.default for f in fields(Case) if f.default is not MISSING}


def mutate(case: Case | None, event: e.CaseEvent) -> Case:
    """Fold one event into the case's state."""
    if isinstance(event, e.SiteFound):
        return Case.found(event)
    if case is None:  # only a damaged store has a case whose first event is not SiteFound
        raise DomainError(
            f"存储已损坏：案件对象 {event.originator_id} 的第一个事件是{event.TITLE}，"
            "不是发现。请用备份恢复，或交管理员核查"
        )
    changes: dict[str, Any] = {"version": event.originator_version}
    match event:
        case e.SiteCorrected():
            changes["site"] = case.site.model_copy(update=event.changes())
        case e.Stopped():
            changes["stopped"] = True
        case e.Dismissed():
            changes["dismissed"] = True
        case e.CaseFiled():
            changes["filed"] = True
        case e.PenaltyDecided():
            changes["decided"] = True
        case e.RectificationOrdered():
            changes["rectifying"] = True
        case e.RectificationRecorded():
            changes["rectifying"] = True
            for name in RECORD_TOTALS:
                added = getattr(event, name)
                if added:
                    changes[name] = getattr(case, name) + added
        case e.RectificationCompleted():
            changes["rectified"] = True
        case e.ClosedOut():
            changes["closed_out"] = True
        case e.Reopened():
            changes.update(closed_out=False, dismissed=False, rectified=False)
    return case.evolved(changes)  # Referred, Flagged: beside the states


def check(case: Case | None, command: c.CaseCommand, campaign: Campaign, today: date) -> None:
    """Every rule of DESIGN's list, and nothing else; a DomainError names the field and the rule."""
    if command.on > today:
        raise DomainError(f"日期 {command.on} 晚于今天 {today}，不能记录将来的事", field="on")
    if isinstance(command, c.FindSite):
        _check_site(command, campaign)
        return
    if case is None:  # the service looks the ref up first: this is a caller's mistake
        raise DomainError(f"编号 “{command.ref}” 不存在", field="ref")
    ref = case.ref
    kind = type(command)
    refused = _closed_refusal(case, kind)
    if refused is not None:
        raise refused
    if command.on < case.found_on:
        raise DomainError(f"日期 {command.on} 早于发现日期 {case.found_on}", field="on")
    refused = _step_refusal(case, kind)
    if refused is not None:
        raise refused
    match command:
        case c.CorrectSite():
            _check_site(case.site.model_copy(update=command.changes()), campaign)
        case c.FileCase() if command.unit:
            campaign.check_unit(command.unit)
        case c.RecordRectification() if command.permit_doc_no and not case.decided:
            raise DomainError(
                f"补办手续文号：案件 {ref} 尚未作出处罚决定，先处罚后补办手续",
                field="permit_doc_no",
            )
        case c.RecordRectification():
            _check_totals(case, command)


def state_refusal(case: Case, kind: type[c.CaseCommand]) -> DomainError | None:
    """The rule of DESIGN's list that the case's state alone breaks for any command of this
    kind, whatever its fields; None when the state allows it. `check` raises the same errors."""
    if issubclass(kind, c.FindSite):
        return DomainError(f"编号 “{case.ref}” 已存在，不能重复发现", field="ref")
    refused = _closed_refusal(case, kind)
    return refused if refused is not None else _step_refusal(case, kind)


def _closed_refusal(case: Case, kind: type[c.CaseCommand]) -> DomainError | None:
    if (case.closed_out or case.dismissed) and not issubclass(
        kind, c.Reopen | c.CorrectSite | c.Flag
    ):
        return DomainError(
            f"案件 {case.ref} {case.state}，只能重开（reopen）、更正（correct_site）或标记（flag）",
            field="cmd",
        )
    return None


def _step_refusal(case: Case, kind: type[c.CaseCommand]) -> DomainError | None:
    """Filed once, decided once and only when filed, closed out when rectified, reopened when
    closed out or dismissed. `check` tests these after the dates."""
    ref = case.ref
    if issubclass(kind, c.FileCase) and case.filed:
        return DomainError(f"案件 {ref} 已立案，一个案件只能立案一次", field="case_no")
    if issubclass(kind, c.DecidePenalty) and not case.filed:
        return DomainError(f"案件 {ref} 尚未立案，不能作出处罚决定", field="decision_no")
    if issubclass(kind, c.DecidePenalty) and case.decided:
        return DomainError(
            f"案件 {ref} 已有处罚决定，一个案件只能有一个处罚决定", field="decision_no"
        )
    if issubclass(kind, c.CloseOut) and not case.rectified:
        return DomainError(f"案件 {ref} 尚未整改到位（{case.state}），不能销号", field="cmd")
    if issubclass(kind, c.Reopen) and not (case.closed_out or case.dismissed):
        return DomainError(
            f"案件 {ref} {case.state}，只有已销号或已排除的案件才能重开", field="cmd"
        )
    return None


def valid_commands(case: Case) -> list[type[c.CaseCommand]]:
    """The commands the case's state accepts, in DESIGN's table order (for the 办理 menu).
    A command listed here may still be refused for its fields (a date, an area, a permit
    before the penalty), by `check`."""
    return [kind for kind in c.CASE_COMMANDS if state_refusal(case, kind) is None]


def _check_site(site: Any, campaign: Campaign) -> None:
    campaign.check_township(site.township)
    campaign.check_unit(site.unit)
    for part, whole in (
        ("cultivated_m2", "area_m2"),
        ("basic_farmland_m2", "cultivated_m2"),
        ("eco_redline_m2", "area_m2"),
    ):
        small, big = getattr(site, part), getattr(site, whole)
        if small > big:
            raise DomainError(
                f"{label(part)} {show_amount(part, small)} 大于{label(whole)} "
                f"{show_amount(whole, big)}",
                field=part,
            )


def _check_totals(case: Case, command: c.RecordRectification) -> None:
    """A case's records add up (a fine paid in instalments), each total at most what one amount
    may be: the read side sums them over every case, exactly, in 64-bit integers."""
    for name, bound in RECORD_TOTALS.items():
        added = getattr(command, name)
        before = getattr(case, name)
        if added and before + added > bound:
            unit = "元" if name.endswith("_yuan") else "㎡"
            raise DomainError(
                f"{label(name)}：案件 {case.ref} 各次整改记录已合计 {show_amount(name, before)}，"
                f"再加 {show_amount(name, added)} 超过一个案件的合计上限 {bound:,}{unit}",
                field=name,
            )
