"""The Campaign aggregate: its data file as an event, then contacts, staff and deadlines."""

import tomllib
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from uuid import UUID

from domain import commands as c
from domain import events as e
from domain.errors import DomainError, os_reason

# There is one campaign per store; its id is fixed so every session finds it.
CAMPAIGN_ID = UUID("00000000-0000-7000-8000-000000000001")
DEFAULT_CAMPAIGN_FILE = Path(__file__).parent / "data" / "shangdang-2022.toml"


def load_config(path: Path = DEFAULT_CAMPAIGN_FILE) -> e.CampaignConfig:
    """Read a campaign data file (TOML), with a Chinese message when it is not valid."""
    try:
        return e.CampaignConfig.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except OSError as error:
        raise DomainError(f"专项行动数据文件 {path} 无法读取：{os_reason(error)}") from None
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise DomainError(f"专项行动数据文件 {path} 无法读取：{error}") from None


@dataclass(frozen=True)
class Campaign:
    version: int
    config: e.CampaignConfig
    contacts: dict[str, e.ContactSet] = field(default_factory=dict)
    staff: dict[str, e.StaffRegistered] = field(default_factory=dict)
    deadlines: dict[str, date] = field(default_factory=dict)

    def check_township(self, township: str) -> None:
        _check_listed("township", "乡镇（街道）", township, self.config.townships)

    def check_unit(self, unit: str) -> None:
        _check_listed("unit", "单位", unit, self.config.units)

    def check_unmasking(self, actor: str) -> None:
        """Full ID numbers and phones: anyone while no staff are registered; then only the
        brigade and administrators."""
        member = self.staff.get(actor)
        if self.staff and (member is None or member.role not in ("执法大队", "管理员")):
            raise DomainError(
                f"--unmasked：操作人 “{actor}” 无权查看完整证件号码和电话（限执法大队、管理员）",
                field="unmasked",
            )


def _check_listed(field_name: str, name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise DomainError(
            f"{name}：“{value}”不在本专项行动的名录中，可选：{'、'.join(valid)}", field=field_name
        )


def mutate(campaign: Campaign | None, event: e.Event) -> Campaign:
    if isinstance(event, e.CampaignDefined):
        deadlines = {phase.key: phase.due_on for phase in event.config.phases}
        return Campaign(version=event.originator_version, config=event.config, deadlines=deadlines)
    if campaign is None:  # only a damaged store has a campaign that was never defined
        raise DomainError(
            f"存储已损坏：专项行动的第一个事件是{event.TITLE}，不是专项行动设立。"
            "请用备份恢复，或交管理员核查"
        )
    campaign = replace(campaign, version=event.originator_version)
    if isinstance(event, e.ContactSet):
        return replace(campaign, contacts={**campaign.contacts, event.unit: event})
    if isinstance(event, e.StaffRegistered):
        return replace(campaign, staff={**campaign.staff, event.staff_id: event})
    if isinstance(event, e.DeadlineSet):
        return replace(campaign, deadlines={**campaign.deadlines, event.phase: event.due_on})
    return campaign


def check(campaign: Campaign, command: c.CampaignCommand) -> None:
    """The rules of campaign commands (the actor's role is checked by the service)."""
    if isinstance(command, c.SetContact | c.RegisterStaff):
        campaign.check_unit(command.unit)
    if isinstance(command, c.SetDeadline) and command.phase not in campaign.deadlines:
        phases = "、".join(f"{p.key}（{p.name}）" for p in campaign.config.phases)
        raise DomainError(f"阶段：“{command.phase}”不存在，可选：{phases}", field="phase")
