"""How events become stored rows and back: pydantic models as orjson bytes, and time-ordered ids."""

import os
import threading
import time
from decimal import Decimal
from functools import cache
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from pydantic import ValidationError

from domain.errors import DomainError
from domain.events import BY_TOPIC, Event
from domain.fast import assembled

_ENVELOPE_IDS = {"originator_id", "originator_version"}
_uuid7_lock = threading.Lock()
_uuid7_last = [0, 0]  # last millisecond, counter within it


def uuid7() -> UUID:
    """A time-ordered UUID (RFC 9562 version 7): new rows land at the end of the index."""
    with _uuid7_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _uuid7_last[0]:
            ms, counter = _uuid7_last[0], _uuid7_last[1] + 1
            if counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                ms, counter = ms + 1, 0
        else:
            counter = 0
        _uuid7_last[:] = [ms, counter]
    tail = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return UUID(int=(ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | tail)


@cache
def _serializer(cls: type[Event]) -> Any:
    """The class's pydantic serializer, built on first use (schemas are deferred for start-up)."""
    cls.model_rebuild()
    return cls.__pydantic_serializer__


class OrjsonTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class PydanticMapper(Mapper[UUID]):
    """Events are pydantic models; their JSON form keeps Decimal, date and Chinese text exact."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event = cast(Event, domain_event)
        serializer = _serializer(type(event))
        if event.class_version == 1:  # the model's own JSON: the same bytes as orjson's
            data = serializer.to_json(event, exclude=_ENVELOPE_IDS, exclude_none=True)
        else:
            state = serializer.to_python(
                event, mode="json", exclude=_ENVELOPE_IDS, exclude_none=True
            )
            data = self.transcoder.encode({**state, "class_version": event.class_version})
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return assembled(
            StoredEvent,
            {
                "originator_id": event.originator_id,
                "originator_version": event.originator_version,
                "topic": event.TOPIC,
                "state": data,
            },
        )

    def decode_state(self, topic: str, data: bytes) -> dict[str, Any]:
        """The event's JSON fields, decrypted, decompressed and upcast; not validated (the
        read side folds these directly, which is what makes a rebuild fast)."""
        cls = BY_TOPIC[topic]
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        state: dict[str, Any] = self.transcoder.decode(data)
        version = state.pop("class_version", 1)
        while version < cls.class_version:
            getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
            version += 1
        return state

    def to_domain_event(self, stored_event: StoredEvent) -> Event:
        try:
            cls = BY_TOPIC[stored_event.topic]
            state = self.decode_state(stored_event.topic, stored_event.state)
            state["originator_id"] = stored_event.originator_id
            state["originator_version"] = stored_event.originator_version
            return _validated(cls, state)
        except Exception as error:
            raise DomainError(
                f"存储已损坏：对象 {stored_event.originator_id} 的第 "
                f"{stored_event.originator_version} 个事件（{stored_event.topic}）无法读取："
                f"{error!r}。请用备份恢复，或交管理员核查"
            ) from None


def _validated(cls: type[Event], state: dict[str, Any]) -> Event:
    """A stored event as its class. One stored by an older version may hold a value its field
    no longer takes (a float where an integer belongs): it is read with that value as stored,
    for history and audit, as long as everything else about the event is sound."""
    try:
        return cls.model_validate(state)
    except ValidationError as error:
        odd = {str(p["loc"][0]) for p in error.errors() if p["loc"]} - _ENVELOPE_IDS
        if not odd or not odd.isdisjoint(("on", "timestamp")):
            raise
        event = cls.model_validate({k: v for k, v in state.items() if k not in odd})
        event.__dict__.update({k: _as_stored(cls, k, state[k]) for k in odd if k in state})
        return event


def _as_stored(cls: type[Event], name: str, raw: Any) -> Any:
    """A value as stored, typed as its field when it can be (an amount past today's bound is
    still a Decimal: the case's totals add it up)."""
    info = cls.model_fields.get(name)
    if info is not None and info.annotation is Decimal and not isinstance(raw, bool):
        try:
            return Decimal(str(raw))
        except ArithmeticError:
            pass
    return raw
