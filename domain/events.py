"""Events: facts in the past tense. Each is its command's fields plus the envelope.

A stored event is forever: every class has a stable TOPIC and a class_version; a later schema
change adds `upcast_v1_v2(state)` and bumps the version instead of editing the class.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain import commands as c


class Event(BaseModel):
    """The envelope: which aggregate, its version, when it was recorded and by whom."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    TOPIC: ClassVar[str]
    TITLE: ClassVar[str]  # the Chinese name, for history and exports
    class_version: ClassVar[int] = 1

    originator_id: UUID
    originator_version: int
    timestamp: datetime  # recorded time (UTC), set when the event is created
    actor: str
    actor_unit: str = ""


class CaseEvent(Event, c.CaseCommand):
    pass


class SiteFound(CaseEvent, c.FindSite):
    TOPIC = "landledger.case:SiteFound"
    TITLE = "发现"


class SiteCorrected(CaseEvent, c.CorrectSite):
    TOPIC = "landledger.case:SiteCorrected"
    TITLE = "更正"


class Stopped(CaseEvent, c.Stop):
    TOPIC = "landledger.case:Stopped"
    TITLE = "制止"


class Dismissed(CaseEvent, c.Dismiss):
    TOPIC = "landledger.case:Dismissed"
    TITLE = "排除"


class CaseFiled(CaseEvent, c.FileCase):
    TOPIC = "landledger.case:CaseFiled"
    TITLE = "立案"


class PenaltyDecided(CaseEvent, c.DecidePenalty):
    TOPIC = "landledger.case:PenaltyDecided"
    TITLE = "处罚决定"


class Referred(CaseEvent, c.Refer):
    TOPIC = "landledger.case:Referred"
    TITLE = "移送"


class RectificationOrdered(CaseEvent, c.OrderRectification):
    TOPIC = "landledger.case:RectificationOrdered"
    TITLE = "整改要求"


class RectificationRecorded(CaseEvent, c.RecordRectification):
    TOPIC = "landledger.case:RectificationRecorded"
    TITLE = "整改记录"


class RectificationCompleted(CaseEvent, c.CompleteRectification):
    TOPIC = "landledger.case:RectificationCompleted"
    TITLE = "整改到位"


class ClosedOut(CaseEvent, c.CloseOut):
    TOPIC = "landledger.case:ClosedOut"
    TITLE = "销号"


class Reopened(CaseEvent, c.Reopen):
    TOPIC = "landledger.case:Reopened"
    TITLE = "重开"


class Flagged(CaseEvent, c.Flag):
    TOPIC = "landledger.case:Flagged"
    TITLE = "标记"


# What a campaign phase's alert counts once its deadline has passed (projections.alerts):
# units without a contact, cases still only found, violations not rectified, or nothing.
PhaseCheck = Literal["contacts", "found", "rectified", "none"]
# Before `checks` was a field (CampaignDefined version 1), the alerts went by these keys.
CHECKS_OF_V1_KEYS: dict[str, PhaseCheck] = {
    "contacts": "contacts",
    "survey": "found",
    "rectify": "rectified",
}


class Phase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    key: str
    name: str
    due_on: date
    checks: PhaseCheck


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    crime_basic_farmland_mu: Decimal = Decimal(5)
    crime_other_cultivated_mu: Decimal = Decimal(10)
    decision_days: int = 60


class CampaignConfig(BaseModel):
    """The campaign data file: names, documents, jurisdiction in official order, phases, alerts."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    name: str
    city: str
    district: str
    bureau: str
    ref_prefix: str
    documents: tuple[str, ...] = ()
    focus: tuple[str, ...] = ()
    townships: tuple[str, ...]
    units: tuple[str, ...]
    phases: tuple[Phase, ...] = ()
    alerts: AlertSettings = AlertSettings()


class CampaignEvent(Event):
    on: date


class CampaignDefined(CampaignEvent):
    TOPIC = "landledger.campaign:CampaignDefined"
    TITLE = "专项行动设立"
    class_version = 2
    config: CampaignConfig

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Version 1's phases had no `checks`: the alerts knew the first data file's keys."""
        for phase in state["config"].get("phases", ()):
            phase.setdefault("checks", CHECKS_OF_V1_KEYS.get(phase["key"], "none"))


class ContactSet(CampaignEvent, c.SetContact):
    TOPIC = "landledger.campaign:ContactSet"
    TITLE = "设置联络人"
    on: date


class StaffRegistered(CampaignEvent, c.RegisterStaff):
    TOPIC = "landledger.campaign:StaffRegistered"
    TITLE = "登记人员"
    on: date


class DeadlineSet(CampaignEvent, c.SetDeadline):
    TOPIC = "landledger.campaign:DeadlineSet"
    TITLE = "设置期限"
    on: date


EVENT_CLASSES: tuple[type[Event], ...] = (
    SiteFound,
    SiteCorrected,
    Stopped,
    Dismissed,
    CaseFiled,
    PenaltyDecided,
    Referred,
    RectificationOrdered,
    RectificationRecorded,
    RectificationCompleted,
    ClosedOut,
    Reopened,
    Flagged,
    CampaignDefined,
    ContactSet,
    StaffRegistered,
    DeadlineSet,
)
BY_TOPIC: dict[str, type[Event]] = {cls.TOPIC: cls for cls in EVENT_CLASSES}
BY_COMMAND: dict[type[c.Command], type[Event]] = {
    base: cls for cls in EVENT_CLASSES for base in cls.__bases__ if base in c.COMMANDS.values()
}
