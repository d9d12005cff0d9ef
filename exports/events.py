"""The event log as JSON Lines: one event a line, readable without this software.

The first line describes the export (its cutoff, the store's fingerprint N:HASH, whether personal
data is masked); every other line is one event in recorded order, up to the fingerprint's N-th:

    {"position": 7, "ref": "SD-2022-0001", "event": "CaseFiled", "title": "立案",
     "on": "2022-02-15", "recorded_at": "2022-02-15T10:01:02+08:00", "actor": "wang",
     "actor_unit": "", "aggregate": "…", "version": 3, "fields": {"case_no": "…", …},
     "topic": "CaseFiled", "state_sha256": "…"}

Amounts are decimal strings (exact), dates ISO, recorded times ISO 8601 in China time.
`topic` and `state_sha256` (the SHA-256 of the event's stored bytes) are what the hash chain
covers besides position, aggregate and version: `tools/fingerprint.py` recomputes the
fingerprint from them. An unmasked export of an unencrypted store also carries `state`, the
stored JSON itself, whose SHA-256 the script checks. An event that a cutoff leaves out is
still listed, as `{"omitted": true}` with only those chain fields, so the chain stays whole.
"""

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import orjson

from domain import events as e
from domain.values import CHINA, PERSONAL_FIELDS, masked
from exports.files import create_part
from exports.stamp import Stamp
from projections import ledger
from storage.store import EventStore


def event_line(position: int, event: e.Event, *, unmasked: bool) -> dict[str, Any]:
    fields = {
        k: v
        for k, v in event.model_dump(mode="json", exclude_none=True, warnings=False).items()
        if k not in e.Event.model_fields and k not in ("ref", "on")
    }
    if not unmasked:
        for key in PERSONAL_FIELDS.keys() & fields.keys():
            fields[key] = masked(key, fields[key])
    return {
        "position": position,
        "ref": getattr(event, "ref", None) if isinstance(event, e.CaseEvent) else None,
        "event": type(event).__name__,
        "title": event.TITLE,
        "on": cast(Any, event).on.isoformat(),
        "recorded_at": event.timestamp.astimezone(CHINA).isoformat(timespec="seconds"),
        "actor": event.actor,
        "actor_unit": event.actor_unit,
        "aggregate": str(event.originator_id),
        "version": event.originator_version,
        "fields": fields,
    }


def write_events(
    path: str | Path,
    app: EventStore,
    *,
    stamp: Stamp,
    unmasked: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write the log up to the stamp's cutoffs; returns the number of events written.

    `--known-at` keeps events recorded by then; `--as-of` keeps events whose business date is on
    or before it, and corrections of the cases found by then (a correction fixes what was known,
    at every business date — the ledger's own rule)."""
    target = Path(path)
    handle, tmp = create_part(target)
    written = 0
    total = int(stamp.fingerprint.split(":")[0])
    found: set[Any] = set()
    try:
        with os.fdopen(handle, "wb") as out:
            head = {
                "export": "landledger-events",
                "as_of": stamp.as_of.isoformat() if stamp.as_of else None,
                "known_at": stamp.known_at.isoformat() if stamp.known_at else None,
                "fingerprint": stamp.fingerprint,
                "made_at": stamp.made_at.isoformat(timespec="seconds"),
                "masked": not unmasked,
            }
            out.write(orjson.dumps(head) + b"\n")
            clear = unmasked and app.mapper.cipher is None
            for seen, notification in enumerate(app.notifications(), start=1):
                if notification.id > stamp.head_position:
                    break  # recorded after the fingerprint was read
                if progress is not None and seen % 20000 == 0:
                    progress(seen, total)
                event = cast(e.Event, app.mapper.to_domain_event(notification))
                chained = {
                    "topic": notification.topic,
                    "state_sha256": hashlib.sha256(notification.state).hexdigest(),
                }
                if not _kept(notification.id, event, stamp, found):
                    line: dict[str, Any] = {
                        "position": notification.id,
                        "omitted": True,
                        "aggregate": str(event.originator_id),
                        "version": event.originator_version,
                        **chained,
                    }
                    out.write(orjson.dumps(line) + b"\n")
                    continue
                line = {**event_line(notification.id, event, unmasked=unmasked), **chained}
                if clear:
                    line["state"] = notification.state.decode()
                out.write(orjson.dumps(line) + b"\n")
                written += 1
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written


def _kept(position: int, event: e.Event, stamp: Stamp, found: set[Any]) -> bool:
    """A case event by the ledger's own cutoff rule (`projections.ledger.included`, called, not
    copied); a campaign event by its business date and recorded time."""
    if not isinstance(event, e.CaseEvent):
        if stamp.known_at is not None and event.timestamp > stamp.known_at:
            return False
        return stamp.as_of is None or cast(Any, event).on <= stamp.as_of
    case_id = event.originator_id
    fact = ledger.Fact(
        position,
        case_id.hex,
        event.originator_version,
        type(event).__name__,
        {},  # the rule reads the kind, the dates and whether the case is found, not the fields
        event.on.isoformat(),
        ledger.us_of(event.timestamp),
    )
    as_of = stamp.as_of.isoformat() if stamp.as_of else None
    known_us = ledger.us_of(stamp.known_at) if stamp.known_at else None
    found_row: ledger.Row | None = {} if case_id in found else None  # found by the cutoff
    if not ledger.included(fact, found_row, as_of, known_us):
        return False
    found.add(case_id)
    return True
