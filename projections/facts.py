"""The log as the read side sees it: its case events as facts, decoded but not validated,
a page at a time."""

from collections.abc import Iterable, Iterator
from typing import cast

from domain import events as e
from domain.errors import DomainError
from projections.ledger import Fact
from storage.mapper import PydanticMapper
from storage.sqlite import LedgerRecorder, LogRow
from storage.store import EventStore

PAGE = 5000
KIND_OF_TOPIC = {cls.TOPIC: cls.__name__ for cls in e.EVENT_CLASSES if issubclass(cls, e.CaseEvent)}


def facts_of(app: EventStore, rows: Iterable[LogRow]) -> Iterator[Fact]:
    """Log rows → the read side's facts (case events only), decoded but not validated."""
    decode = cast(PydanticMapper, app.mapper).decode_state
    kinds = KIND_OF_TOPIC
    for position, case_id, version, topic, state in rows:
        kind = kinds.get(topic)
        if kind is not None:
            try:
                data = decode(topic, state)
            except Exception as error:
                raise unreadable_event(position, case_id, version, topic, error) from None
            yield Fact.of(position, case_id, version, kind, data)


def unreadable_event(
    position: int, case_id: str, version: int, kind: str, error: Exception
) -> DomainError:
    return DomainError(
        f"存储已损坏：第 {position} 个事件（案件对象 {case_id} 第 {version} 个事件，{kind}）"
        f"无法读取：{error!r}。请用备份恢复，或交管理员核查"
    )


def log(app: EventStore, after: int = 0, page: int = PAGE) -> Iterator[list[LogRow]]:
    """The log from a position on, in pages."""
    while rows := cast(LedgerRecorder, app.recorder).log_page(after, page):
        yield rows
        after = rows[-1][0]


def all_facts(app: EventStore) -> Iterator[Fact]:
    for rows in log(app):
        yield from facts_of(app, rows)
