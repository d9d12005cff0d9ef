"""A stored event is forever: a later class version reads old events through its upcaster."""

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
import pytest

from domain import events as e
from service.ledger import LandLedger


class FlaggedV2(e.Flagged):
    """As if `note` had been renamed `remark` in a second version of the event."""

    TOPIC: ClassVar[str] = e.Flagged.TOPIC
    class_version: ClassVar[int] = 2
    remark: str = ""

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["remark"] = state.pop("note", "")


def test_old_events_are_upcast_and_new_ones_carry_their_version(
    app: LandLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = e.Flagged(
        originator_id=uuid.uuid4(),
        originator_version=2,
        timestamp=datetime.now(UTC),
        actor="staff",
        ref="V-1",
        on="2022-02-10",
        kind="典型案件",
        note="跟踪检查",
    )
    stored_v1 = app.mapper.to_stored_event(old)
    assert "class_version" not in orjson.loads(stored_v1.state)

    monkeypatch.setitem(e.BY_TOPIC, e.Flagged.TOPIC, FlaggedV2)
    read = app.mapper.to_domain_event(stored_v1)
    assert isinstance(read, FlaggedV2) and read.remark == "跟踪检查"

    stored_v2 = app.mapper.to_stored_event(read)
    assert orjson.loads(stored_v2.state)["class_version"] == 2
    assert app.mapper.to_domain_event(stored_v2) == read
