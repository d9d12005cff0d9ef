"""The write side: check each command against the rules and append, one transaction a batch."""

import pickle
import random
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, StoredEvent

from domain import campaign as campaign_rules
from domain import case as case_rules
from domain import commands as c
from domain import events as e
from domain.campaign import CAMPAIGN_ID
from domain.case import Case
from domain.errors import DomainError
from domain.fast import unchecked
from domain.values import china_today, plain_text, printable
from service.states import CaseStates
from storage.mapper import uuid7
from storage.store import EventStore

# A batch that lost the race to another session's write of the same case is checked again
# from the top on the newer state and written if still valid; after this many lost races, it
# is checked once more with the log's write lock held (see LandLedger.record).
RACES_BEFORE_LOCK = 3
CONFLICT_PAUSE = 0.005  # seconds; the random pause after the n-th lost race is up to n × this
CONNECTION_RETRIES = 5  # a PostgreSQL connection lost inside a batch: tries on a new one
CONNECTION_PAUSE = 0.2  # seconds; the n-th try waits n × this
CHECKED_AGAIN = "（另一会话刚刚写入了此案件，已按最新记录重新核对）"


def again(error: DomainError) -> DomainError:
    """A rule's refusal of a command that passed on the state read before another session
    wrote: said so."""
    return DomainError(error.message + CHECKED_AGAIN, field=error.field)


# Case states kept between batches of one process (a few KB each: a province's cases fit);
# a stale one fails its save and is reloaded.
CACHE_SIZE = 250_000
# Rejected commands of a batch that are reported, in order, and refs it generated that are
# kept (the rest counted).
LISTED = 100
CHUNK = 5000  # commands read ahead, for one query of the refs they name
FLUSH = 20_000  # events of a large batch kept in memory; the rest wait in a temporary file
REF_BLOCK = 1000  # candidate refs looked up in one query when numbering new sites


@dataclass
class Recorded:
    """What one batch appended."""

    commands: int = 0
    events: int = 0
    cases: int = 0  # the cases touched
    new_cases: int = 0  # of which found by the batch
    # Refs given to sites found without one: how many, and the first LISTED of them (a file
    # of a province's sites without refs would otherwise hold each).
    generated: int = 0
    generated_refs: list[str] = field(default_factory=list)


class Unreadable(DomainError):
    """An item of a batch that is not a command at all (bad JSON, an unknown `cmd`): it is
    reported in its place among the batch's rejections."""

    def __init__(self, error: DomainError, command: str = "") -> None:
        super().__init__(error.message, field=error.field)
        self.command = command  # the `cmd` it names, if any


@dataclass(frozen=True)
class Rejection:
    index: int  # the command's position in the batch
    command: str  # its name ("" when the item named none)
    error: DomainError


class CommandRejected(DomainError):
    """Commands of a batch that broke a rule or could not be read: the first LISTED of them in
    batch order, and how many there were. Nothing of the batch was written."""

    def __init__(self, rejections: list[Rejection], count: int) -> None:
        first = rejections[0]
        super().__init__(first.error.message, field=first.error.field)
        self.rejections = rejections
        self.count = count


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

    def record(
        self, commands: Iterable[c.Command | Unreadable], actor: str, *, remember: bool = True
    ) -> Recorded:
        """All commands or none, in one transaction. Every command is checked, so one
        CommandRejected names all that fail. A conflicting write by another session (same case,
        or same new ref) is retried from the top, with every rule checked again: `commands` is
        iterated once per attempt (a list, or a file read again, service.session.CommandLines),
        and each command is dropped once checked, so a large file is never held whole.
        `remember=False` keeps no case state for a next batch (a process that records once)."""
        try:  # the actor is stored in every event: a text like any other
            plain_text(actor)
        except ValueError:
            raise DomainError(
                f"操作人 “{printable(actor)[:40]}” 含有控制字符或过长，不能记录", field="actor"
            ) from None
        races = lost = 0
        while True:
            try:
                recorded, cases = self._record_once(
                    commands,
                    actor,
                    remember=remember,
                    after_conflict=races > 0,
                    locked=races == RACES_BEFORE_LOCK,
                )
                if remember:
                    self._remember(cases)
                return recorded
            except IntegrityError:
                if races == RACES_BEFORE_LOCK:  # a writer that does not take the lock first
                    raise DomainError("其他会话正在同时修改这些案件，请稍后重试") from None
                races += 1
                self._cases.clear()  # another session wrote: read every case afresh
                self.conflict_retries += 1
                # Apart, so that offices writing the same cases at once do not collide again.
                time.sleep(random.uniform(0, CONFLICT_PAUSE * races))
            except (InterfaceError, OperationalError):
                # PostgreSQL's connection ended inside the batch (a restart, a failover): nothing
                # was committed, so the batch is tried again, checked afresh, on a new one.
                if not self.is_postgres or lost == CONNECTION_RETRIES:
                    raise
                lost += 1
                self._cases.clear()
                time.sleep(CONNECTION_PAUSE * lost)

    def _record_once(
        self,
        commands: Iterable[c.Command | Unreadable],
        actor: str,
        *,
        remember: bool = True,
        after_conflict: bool = False,
        locked: bool = False,
    ) -> tuple[Recorded, dict[str, Case]]:
        """One attempt, and the case states to remember. The checked events go to a temporary
        file in parts of FLUSH (a batch smaller than that stays in memory); once every command
        passed, they are written from it a part at a time into one transaction. Memory holds a
        part, not the file, and the store is locked no longer than the writing itself."""
        with ExitStack() as stack:
            # After lost races: the log's write lock first, so that no other session writes
            # between the check and the write.
            write = stack.enter_context(self.appending()) if locked else None
            batch = stack.enter_context(_Batch(self, actor))
            rejections, count, read = self._check(batch, commands)
            if rejections and batch.used_cache:  # a state kept from an earlier batch may be old
                self._cases.clear()
                batch = stack.enter_context(_Batch(self, actor))
                rejections, count, read = self._check(batch, commands)
            if rejections:
                if after_conflict:  # it passed on the state read before: another session wrote
                    rejections = [Rejection(r.index, r.command, again(r.error)) for r in rejections]
                raise CommandRejected(rejections, count)
            if not read:
                raise DomainError("没有命令：输入为空")
            recorded = Recorded(
                commands=read,
                events=batch.events,
                cases=len(batch.cases),
                new_cases=batch.cases.found_cases(),
                generated=batch.generated,
                generated_refs=batch.generated_refs,
            )
            cases = batch.cases.everything() if remember else {}
            batch.cases.let_go()  # not needed to write: their memory goes to the writing
            if write is None:
                write = stack.enter_context(self.appending())
            # The new cases' refs go with the events, a part beside each part of events.
            refs = batch.cases.found_refs(FLUSH)
            for part in batch.parts():
                write(part, next(refs, []))
            for rest in refs:
                write([], rest)
        return recorded, cases

    @staticmethod
    def _check(
        batch: "_Batch", commands: Iterable[c.Command | Unreadable]
    ) -> tuple[list[Rejection], int, int]:
        """Every command checked in turn into the batch: the first LISTED rejections, how many
        there were, and how many commands were read."""
        rejections: list[Rejection] = []
        count = read = 0
        numbered = enumerate(commands)
        while chunk := list(islice(numbered, CHUNK)):
            batch.look_up(command for _, command in chunk)
            for index, command in chunk:
                try:
                    if isinstance(command, Unreadable):
                        raise command
                    batch.apply(command)
                except DomainError as error:
                    name = command.command if isinstance(command, Unreadable) else command.NAME
                    count += 1
                    if len(rejections) < LISTED:
                        rejections.append(Rejection(index, name, error))
            read += len(chunk)
            del chunk
            if not rejections and len(batch.stored) >= FLUSH:
                batch.spill()
        return rejections, count, read


class _Batch:
    """Commands checked against the store plus what the batch itself already did."""

    def __init__(self, app: LandLedger, actor: str) -> None:
        self.app = app
        self.actor = actor
        # Which refs exist already: cached cases do; the rest are looked up as they come.
        self.cached = app._cases
        self.used_cache = False  # a command was checked against a state kept from a past batch
        self.known: dict[str, UUID] = {}  # of the refs the commands being checked name
        # Each event is encoded as soon as it is made, while its values are still in the
        # processor's cache: a separate pass after the batch cost 1 µs more an event.
        self.stored: list[StoredEvent] = []
        campaign = app.stored_campaign()
        if campaign is None:  # the first batch of a new store records the campaign too
            definition = app.definition()
            self.stored.append(app.mapper.to_stored_event(definition))
            campaign = campaign_rules.mutate(None, definition)
        self.campaign = campaign
        self.today = china_today()
        self.now = datetime.now(UTC)
        # Those the batch touched, as it left them, and the refs of those it found.
        self.cases = CaseStates()
        self.spool: BinaryIO | None = None  # the parts of a large batch, pickled
        self.spilled = 0  # parts in the spool
        self.events = 0  # events the commands made (the campaign's definition is not one)
        self.generated = 0
        self.generated_refs: list[str] = []  # the first LISTED
        self._free_refs: deque[str] = deque()
        self._next_number = 1

    def __enter__(self) -> "_Batch":
        return self

    def __exit__(self, *_: object) -> None:
        self.cases.close()
        if self.spool is not None:
            self.spool.close()

    def spill(self) -> None:
        """Move the events made since the last part to the spool."""
        if self.spool is None:
            self.spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        pickle.dump(self.stored, self.spool, protocol=pickle.HIGHEST_PROTOCOL)
        self.spilled += 1
        self.stored = []

    def parts(self) -> Iterator[list[StoredEvent]]:
        """Every event made, in order: the spooled parts, then those still in memory."""
        if self.spool is not None:
            self.spool.seek(0)
            for _ in range(self.spilled):
                yield pickle.load(self.spool)  # our own file, written just now
        yield self.stored

    def look_up(self, commands: Iterable[c.Command | Unreadable]) -> None:
        """Which of these commands' refs exist already: cached cases do; one query for the
        rest. Only these commands' are kept: a case read is among the batch's states after."""
        refs = {
            ref
            for x in commands
            if isinstance(x, c.CaseCommand)
            and (ref := x.ref)
            and ref not in self.cases
            and ref not in self.cached
        }
        self.known = self.app.ledger_recorder.case_ids(refs) if refs else {}

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
            self.cases.add_found(command.ref, case_rules.mutate(case, event))
        else:
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
        self.events += 1
        return event

    def _case(self, ref: str) -> Case:
        case = self.cases.get(ref)
        if case is None:
            cached = self.cached.get(ref)
            self.used_cache |= cached is not None
            if cached is None and ref not in self.known:
                raise DomainError(f"编号 “{ref}” 不存在", field="ref")
            case = self.cases[ref] = cached or self.app.load_case(self.known[ref])
        return case

    def _generate_ref(self) -> str:
        """The campaign's prefix and the lowest number no case has (refs a user gave, with this
        prefix or another, take no number from the sequence)."""
        prefix = self.campaign.config.ref_prefix
        while True:
            while not self._free_refs:
                start = self._next_number
                self._next_number += REF_BLOCK
                block = [f"{prefix}{n:04d}" for n in range(start, start + REF_BLOCK)]
                taken = self.app.ledger_recorder.case_ids(block)
                self._free_refs.extend(ref for ref in block if ref not in taken)
            ref = self._free_refs.popleft()
            if ref not in self.cases:
                self.generated += 1
                if len(self.generated_refs) < LISTED:
                    self.generated_refs.append(ref)
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
