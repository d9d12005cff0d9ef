"""Helpers of the fuzz tests: the store's state, DESIGN's bounds checked on what was stored, and
the shape of a refusal. The bounds are written here from DESIGN, not imported from the code."""

import os
import re
import unicodedata
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from helpers import find
from hypothesis import HealthCheck, settings

from domain import events as e
from service.ledger import LandLedger

CHINESE = re.compile(r"[\u4e00-\u9fff]")
ENVELOPE = {"originator_id", "originator_version", "timestamp", "actor", "actor_unit"}
# The case both command fuzzers record first, so that commands on a known case are tried too.
DECIDED_CASE = [
    find("FZ-1"),
    {"cmd": "file_case", "ref": "FZ-1", "on": "2022-02-11", "case_no": "立1"},
    {
        "cmd": "decide_penalty",
        "ref": "FZ-1",
        "on": "2022-02-12",
        "decision_no": "罚1",
        "fine_yuan": "1000",
    },
]
LONG_TEXTS = {"note", "reason"}  # DESIGN: 10,000 characters, and line breaks and tabs


def fuzz_settings(examples: int) -> settings:
    """Bounded in CI: a few dozen examples (LANDLEDGER_FUZZ_SCALE=10 runs ten times as many),
    no deadline (the machine is shared), no example database (each run explores afresh)."""
    scale = float(os.environ.get("LANDLEDGER_FUZZ_SCALE", "1"))
    return settings(
        max_examples=max(1, int(examples * scale)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def fingerprint(db: str) -> str:
    """The count of events and the hash chain's head: any write changes it."""
    app = LandLedger(db)
    try:
        return app.fingerprint()
    finally:
        app.close()


def assert_refused(code: int, out: str, err: str) -> None:
    """Exit 1, nothing on standard output, one Chinese reason on standard error."""
    assert "Traceback" not in err, err
    assert (code, out) == (1, ""), (code, out, err)
    assert err.startswith("错误：") and CHINESE.search(err), err


def assert_within_design_bounds(db: str) -> None:
    """Every stored value is one DESIGN lets in: amounts of at most two places within their
    bounds, persons an integer to 10,000, texts without control characters within their
    lengths, lists of at most 100 items, business dates not in the future, lon/lat in range."""
    app = LandLedger(db)
    try:
        tomorrow = date.today() + timedelta(days=2)  # China's today, whatever the zone here
        for event in app.all_events():
            if isinstance(event, e.CampaignDefined):
                continue  # the data file, not user input
            for name, value in event.model_dump(exclude=ENVELOPE).items():
                _check(name, value, tomorrow)
    finally:
        app.close()


def _check(name: str, value: Any, tomorrow: date) -> None:
    where = f"{name}={value!r:.80}"
    if isinstance(value, list | tuple):
        assert len(value) <= 100, where
        for item in value:
            _check(name, item, tomorrow)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, Decimal):
        bound = Decimal(10_000_000_000) if name.endswith("_yuan") else Decimal(100_000_000)
        assert value.is_finite() and 0 <= value <= bound, where
        assert value == value.quantize(Decimal("0.01")), where
    elif isinstance(value, int):
        assert name == "persons" and 0 <= value <= 10_000, where
    elif isinstance(value, float):
        assert name in ("lon", "lat") and abs(value) <= (180 if name == "lon" else 90), where
    elif isinstance(value, date):
        assert date(1900, 1, 1) <= value < tomorrow, where
    elif isinstance(value, str):
        assert len(value) <= (10_000 if name in LONG_TEXTS else 2_000), where
        allowed = "\n\r\t" if name in LONG_TEXTS else ""
        bad = [ch for ch in value if unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed]
        assert not bad, where
    else:
        raise AssertionError(f"unexpected stored value {where}")
