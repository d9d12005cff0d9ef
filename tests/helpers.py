"""Shared test helpers: JSON commands as DESIGN writes them, recording, and the CLI in-process.

Kept free of projections/ and domain.case so the independent statistics test can use it.
"""

import contextlib
import io
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from domain.commands import parse_command
from domain.errors import DomainError
from service.ledger import LandLedger, Recorded
from tui.cli import main

# DESIGN's jurisdiction, in the official order (copied from DESIGN, not from the data file).
TOWNSHIPS = (
    "韩店街道",
    "苏店镇",
    "荫城镇",
    "西火镇",
    "八义镇",
    "贾掌镇",
    "郝家庄镇",
    "南宋乡",
    "东和乡",
    "北呈乡",
)
UNITS = (
    "韩店自然资源所",
    "苏店自然资源所",
    "荫城自然资源所",
    "西火自然资源所",
    "八义自然资源所",
    "贾掌自然资源所",
    "郝家庄自然资源所",
    "南宋自然资源所",
    "东和自然资源所",
    "北呈自然资源所",
    "执法监察大队",
    "耕地保护股",
    "国土空间规划股",
)
VIOLATION_TYPES = (
    "无规划许可",
    "未按许可建设",
    "占用耕地",
    "占用永久基本农田",
    "侵占生态保护红线",
    "其他",
)

# The measures of `stats --json`, by JSON type.
COUNT_MEASURES = (
    "found",
    "dismissed",
    "violations",
    "major_hazards",
    "major_hazards_rectified",
    "stopped",
    "filed",
    "decided",
    "referred_police",
    "referred_police_persons",
    "referred_discipline",
    "referred_discipline_persons",
    "referred_other",
    "permits",
    "rectified",
    "closed_out",
    "open",
    "overdue",
    "over_crime_threshold_unreferred",
)
AMOUNT_MEASURES = (
    "area_m2",
    "cultivated_m2",
    "basic_farmland_m2",
    "eco_redline_m2",
    "fines_decided_yuan",
    "fines_paid_yuan",
    "demolished_m2",
    "restored_m2",
)
ALL_MEASURES = (*COUNT_MEASURES, *AMOUNT_MEASURES, "rectification_rate")
ZERO_MEASURES: dict[str, Any] = {
    **dict.fromkeys(COUNT_MEASURES, 0),
    **dict.fromkeys(AMOUNT_MEASURES, "0.00"),
    "rectification_rate": "0.0000",
}

ACTOR = "staff-1"


def find(ref: str, on: str = "2022-02-10", **fields: Any) -> dict[str, Any]:
    """A valid find_site in 苏店镇; `fields` override or add to it."""
    return {
        "cmd": "find_site",
        "ref": ref,
        "on": on,
        "source": "巡查",
        "township": "苏店镇",
        "unit": "苏店自然资源所",
        "violation_types": ["占用耕地"],
        "area_m2": "1000.00",
        **fields,
    }


def cmd(name: str, ref: str, on: str, **fields: Any) -> dict[str, Any]:
    return {"cmd": name, "ref": ref, "on": on, **fields}


def record(app: LandLedger, *commands: dict[str, Any], actor: str = ACTOR) -> Recorded:
    return app.record([parse_command(c) for c in commands], actor)


def rejected(app: LandLedger, *commands: dict[str, Any], actor: str = ACTOR) -> str:
    """Record the commands as one batch, expect a rejection and an unchanged store; the message."""
    app.campaign()  # a fresh store defines its campaign on first use, rejected input or not
    before = app.fingerprint()
    count = sum(1 for _ in app.all_events())
    with pytest.raises(DomainError) as info:
        record(app, *commands, actor=actor)
    assert app.fingerprint() == before
    assert sum(1 for _ in app.all_events()) == count
    return info.value.message


def cli(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run `landledger ARGS` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = None
    if stdin is not None:
        saved, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        if saved is not None:
            sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


def stats(db: str, *options: str) -> dict[str, Any]:
    """`landledger --db DB stats --json OPTIONS`, parsed, without its `fingerprint` (the store's,
    not the figures': tests compare the figures of different stores)."""
    code, out, err = cli("--db", db, "stats", "--json", *options)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    count, _, head = result.pop("fingerprint").partition(":")
    assert count.isdigit() and len(head) == 64
    return result


def measures(**given: Any) -> dict[str, Any]:
    """Every measure: zero unless given."""
    return {**ZERO_MEASURES, **given}


def group(result: dict[str, Any], key: str) -> dict[str, Any]:
    found = [g for g in result["groups"] if g["key"] == key]
    assert len(found) == 1, f"group {key!r} appears {len(found)} times"
    return {k: v for k, v in found[0].items() if k != "key"}


def jsonl(commands: Sequence[dict[str, Any]]) -> str:
    """JSON lines; Decimal values become JSON numbers written exactly."""

    def number(value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"§{value}§"
        raise TypeError(value)

    lines = []
    for command in commands:
        text = json.dumps(command, ensure_ascii=False, default=number)
        lines.append(text.replace('"§', "").replace('§"', ""))
    return "\n".join(lines) + "\n"
