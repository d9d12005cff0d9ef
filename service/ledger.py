"""The write side: check each command against the rules and append, one transaction a batch."""

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent

from domain import campaign as campaign_rules
from domain import case as case_rules
from domain import commands as c
from domain import events as e
from domain.campaign import CAMPAIGN_ID
from domain.case import Case
from domain.errors import DomainError
from domain.fast import unchecked
from domain.values import china_today, plain_text, printable
from storage.mapper import uuid7
from storage.store import EventStore

# A batch that lost the race to another session's write of the same case is checked again
# from the top on the newer state and written if still valid; after this many lost races, it
# is checked once more with the log's write lock held (see LandLedger.record).
RACES_BEFORE_LOCK = 3
CONFLICT_PAUSE = 0.005  # seconds; the random pause after the n-th lost race is up to n × this
CHECKED_AGAIN = "（另一会话刚刚写入了此案件，已按最新记录重新核对）"
# Case states kept between batches of one process (a few KB each: a province's cases fit);
# a stale one fails its save and is reloaded.
CACHE_SIZE = 250_000


@dataclass
class Recorded:
    """What one batch appended."""

    commands: int = 0
    events: int = 0
    refs: list[str] = field(default_factory=list)  # the cases touched, in first-touched order
    new_refs: list[str] = field(default_factory=list)


class CommandRejected(DomainError):
    """A command of a batch broke a rule; `index` is its position in the batch."""

    def __init__(self, index: int, command: str, error: DomainError) -> None:
        super().__init__(error.message, field=error.field)
        self.index = index
        self.command = command


class LandLedger(EventStore):
    """The event store with its rules: `record` is the one way anything is written."""

    def __init__(
        self,
        db: str | None = None,
        *,
        campaign_file: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(db, campaign_file=campaign_file, env=env)
        self._cases: dict[str, Case] = {}  # by ref, in the order first cached
        self.conflict_retries = 0  # batches tried again because another session wrote first

    def _remember(self, cases: dict[str, Case]) -> None:
        """Keep the batch's case states (by ref); past the limit the earliest cached go first."""
        self._cases.update(cases)
        for _ in range(len(self._cases) - CACHE_SIZE):
            del self._cases[next(iter(self._cases))]

    # Writing -----------------------------------------------------------------

    def record(self, commands: Sequence[c.Command], actor: str) -> Recorded:
        """All commands or none, in one transaction. A conflicting write by another session
        (same case, or same new ref) is retried from the top, with every rule checked again."""
        try:  # the actor is stored in every event: a text like any other
            plain_text(actor)
        except ValueError:
            raise DomainError(
                f"操作人 “{printable(actor)[:40]}” 含有控制字符或过长，不能记录", field="actor"
            ) from None
        for attempt in range(RACES_BEFORE_LOCK):
            batch = self._checked(commands, actor, after_conflict=attempt > 0)
            try:
                self.append(batch.stored, list(batch.new_refs.items()))
                break
            except IntegrityError:
                self._cases.clear()  # another session wrote: read every case afresh
                self.conflict_retries += 1
                # Apart, so that offices writing the same cases at once do not collide again.
                time.sleep(random.uniform(0, CONFLICT_PAUSE * (attempt + 1)))
        else:
            batch = self._written_under_lock(commands, actor)
        self._remember(batch.cases)
        return Recorded(
            commands=len(commands),
            events=len(batch.stored) - batch.recorded_before,
            refs=list(batch.cases),
            new_refs=list(batch.new_refs),
        )

    def _written_under_lock(self, commands: Sequence[c.Command], actor: str) -> "_Batch":
        """After every race was lost (a batch over many cases among busy offices): checked once
        more with the log's write lock held, so that no other session writes in between."""
        checked: list[_Batch] = []

        def recheck() -> tuple[list[StoredEvent], list[tuple[str, UUID]]]:
            checked.append(self._checked(commands, actor, after_conflict=True))
            return checked[-1].stored, list(checked[-1].new_refs.items())

        try:
            self.append([], [], recheck=recheck)
        except IntegrityError:  # a writer that does not take the lock (an older release)
            raise DomainError("其他会话正在同时修改这些案件，请稍后重试") from None
        return checked[-1]

    def _checked(
        self, commands: Sequence[c.Command], actor: str, *, after_conflict: bool
    ) -> "_Batch":
        """The batch, every command checked against the cases as stored (and the batch's own
        earlier commands). CommandRejected names the first command a rule refuses."""
        batch = _Batch(self, actor, commands)
        refused = batch.apply_all()
        if refused and batch.used_cache:  # a state kept from an earlier batch may be outdated
            self._cases.clear()
            batch = _Batch(self, actor, commands)
            refused = batch.apply_all()
        if refused:
            index, error = refused
            if after_conflict:  # it passed on the state read before: another session wrote
                error = DomainError(f"{error.message}{CHECKED_AGAIN}", field=error.field)
            raise CommandRejected(index, commands[index].NAME, error)
        return batch


class _Batch:
    """Commands checked against the store plus what the batch itself already did."""

    def __init__(self, app: LandLedger, actor: str, commands: Sequence[c.Command]) -> None:
        self.app = app
        self.actor = actor
        self.commands = commands
        # Which refs exist already: cached cases do; one query for the rest of the batch.
        self.cached = app._cases
        self.used_cache = False  # a command was checked against a state kept from a past batch
        refs = {x.ref for x in commands if isinstance(x, c.CaseCommand) and x.ref}
        self.known = app.ledger_recorder.case_ids(refs.difference(self.cached))
        # Each event is encoded as soon as it is made, while its values are still in the
        # processor's cache: a separate pass after the batch cost 1 µs more an event.
        self.stored: list[StoredEvent] = []
        campaign = app.stored_campaign()
        if campaign is None:  # the first batch of a new store records the campaign too
            definition = app.definition()
            self.stored.append(app.mapper.to_stored_event(definition))
            campaign = campaign_rules.mutate(None, definition)
        self.campaign = campaign
        self.recorded_before = len(self.stored)
        self.today = china_today()
        self.now = datetime.now(UTC)
        self.cases: dict[str, Case] = {}
        self.new_refs: dict[str, UUID] = {}
        self._next_number = 0

    def apply_all(self) -> tuple[int, DomainError] | None:
        """Each command in turn; the first refused, with the rule's error."""
        for index, command in enumerate(self.commands):
            try:
                self.apply(command)
            except DomainError as error:
                return index, error
        return None

    def apply(self, command: c.Command) -> None:
        if isinstance(command, c.CampaignCommand):
            self._apply_campaign(command)
        else:
            self._apply_case(cast(c.CaseCommand, command))

    def _apply_campaign(self, command: c.CampaignCommand) -> None:
        unit = self._check_actor(command, None)
        campaign_rules.check(self.campaign, command)
        on = command.on or self.today
        if on > self.today:
            raise DomainError(f"日期 {on} 晚于今天 {self.today}", field="on")
        event = self._event(command, CAMPAIGN_ID, self.campaign.version + 1, unit, on=on)
        self.campaign = campaign_rules.mutate(self.campaign, event)

    def _apply_case(self, command: c.CaseCommand) -> None:
        if isinstance(command, c.FindSite):
            case = None
            if command.ref:
                ref = command.ref
                if ref in self.cases or ref in self.known or ref in self.cached:
                    raise DomainError(f"编号 “{command.ref}” 已存在，不能重复发现", field="ref")
            else:
                command = command.model_copy(update={"ref": self._generate_ref()})
            case_id, version = uuid7(), 1
        else:
            case = self._case(command.ref)
            case_id, version = case.id, case.version + 1
        unit = self._check_actor(command, case)
        case_rules.check(case, command, self.campaign, self.today)
        event = cast(e.CaseEvent, self._event(command, case_id, version, unit))
        if case is None:
            self.new_refs[command.ref] = case_id
        self.cases[command.ref] = case_rules.mutate(case, event)

    def _event(
        self, command: c.Command, originator_id: UUID, version: int, unit: str, **extra: Any
    ) -> e.Event:
        # The command is already validated: build the event without validating it again.
        fields = {
            **command.__dict__,
            **extra,
            "originator_id": originator_id,
            "originator_version": version,
            "timestamp": self.now,
            "actor": self.actor,
            "actor_unit": unit,
        }
        event = unchecked(e.BY_COMMAND[type(command)], fields)
        self.stored.append(self.app.mapper.to_stored_event(event))
        return event

    def _case(self, ref: str) -> Case:
        if ref not in self.cases:
            cached = self.cached.get(ref)
            self.used_cache |= cached is not None
            if cached is None and ref not in self.known:
                raise DomainError(f"编号 “{ref}” 不存在", field="ref")
            self.cases[ref] = cached or self.app.load_case(self.known[ref])
        return self.cases[ref]

    def _generate_ref(self) -> str:
        prefix = self.campaign.config.ref_prefix
        if not self._next_number:
            self._next_number = self.app.ledger_recorder.count_refs() + 1
        while True:
            ref = f"{prefix}{self._next_number:04d}"
            self._next_number += 1
            if ref not in self.cases and not self.app.ledger_recorder.case_ids([ref]):
                return ref

    def _check_actor(self, command: c.Command, case: Case | None) -> str:
        """Roles apply once staff are registered; returns the actor's unit."""
        staff = self.campaign.staff
        if not staff:
            return ""
        member = staff.get(self.actor)
        if member is None:
            raise DomainError(f"操作人 “{self.actor}” 未在人员名录中登记", field="actor")
        if member.role == "审计":
            raise DomainError(
                f"操作人 “{self.actor}” 是审计人员，只能查看，不能记录", field="actor"
            )
        if isinstance(command, c.CampaignCommand):
            has_admin = any(s.role == "管理员" for s in staff.values())
            if has_admin and member.role != "管理员":
                raise DomainError(f"{command.NAME} 只能由管理员记录", field="actor")
        elif member.role == "所员":
            unit = case.site.unit if case else getattr(command, "unit", "")
            if unit != member.unit:
                raise DomainError(
                    f"所员只能记录本单位（{member.unit}）负责的案件，此案件由 {unit} 负责",
                    field="actor",
                )
        return member.unit
