"""Many offices at once on one store (issue 15): commands opening a new store together, two staff
acting on the same case, and processes recording on shared cases while the dashboard saves a
form, on SQLite and PostgreSQL. Nothing accepted is lost or doubled, the sums are exact, a
conflict is retried while the command is still valid and refused by its rule when it is not."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cmd, find, record, rejected

from domain.errors import DomainError
from service.ledger import LandLedger

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def landledger(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tui.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def test_commands_opening_a_new_store_at_once_all_succeed(db_url: str) -> None:
    """Sixteen `stats --json` started together on a new store each create the read model's
    tables if missing: none fails on another's creation."""
    started = [landledger("--db", db_url, "stats", "--json") for _ in range(16)]
    results = [(p.wait(timeout=120), p.stdout, p.stderr) for p in started]
    failures = [err.read() for code, _, err in results if code != 0 and err]
    assert failures == []
    totals = {json.loads(out.read())["total"]["found"] for _, out, _ in results if out}
    assert totals == {0}


# Two sessions, each keeping the case states of its own past batches (as the dashboard and a
# long `record` do), on the same case.


def two_sessions(db_url: str) -> tuple[LandLedger, LandLedger]:
    return LandLedger(db_url), LandLedger(db_url)


def rectified(ref: str) -> list[dict[str, str]]:
    return [
        find(ref),
        cmd("file_case", ref, "2022-02-15", case_no=f"立{ref}"),
        cmd("record_rectification", ref, "2022-02-20", demolished_m2="10", fine_paid_yuan="100"),
        cmd("complete_rectification", ref, "2022-02-25"),
    ]


def test_a_conflicting_write_still_valid_is_retried_and_recorded(db_url: str) -> None:
    first, second = two_sessions(db_url)
    try:
        record(first, *rectified("K-1")[:3])  # the first keeps K-1 at version 3
        paid = {"fine_paid_yuan": "200"}
        record(second, cmd("record_rectification", "K-1", "2022-02-21", **paid))
        record(first, cmd("record_rectification", "K-1", "2022-02-22", **paid))  # version 4 taken
        assert first.conflict_retries == 1
        assert [event.originator_version for event in second.history("K-1")] == [1, 2, 3, 4, 5]
        assert second.case("K-1").fine_paid_yuan == 500
    finally:
        first.close()
        second.close()


def test_a_command_refused_on_a_kept_state_is_checked_on_the_stored_one(db_url: str) -> None:
    """The first session kept K-1 as not yet rectified; another completed its rectification
    since: closing it out is now valid and is recorded, not refused on the outdated state."""
    first, second = two_sessions(db_url)
    try:
        record(first, *rectified("K-1")[:3])
        record(second, cmd("complete_rectification", "K-1", "2022-02-25"))
        record(first, cmd("close_out", "K-1", "2022-02-26"))
        assert second.case("K-1").state == "已销号"
    finally:
        first.close()
        second.close()


def test_two_staff_closing_out_one_case_one_succeeds_the_other_is_told_it_is_closed(
    db_url: str,
) -> None:
    first, second = two_sessions(db_url)
    try:
        record(first, *rectified("K-1"))  # both hold K-1 rectified, not yet closed out
        second.case("K-1")
        record(second, cmd("close_out", "K-1", "2022-02-26", basis="乙"))
        message = rejected(first, cmd("close_out", "K-1", "2022-02-27", basis="甲"))
        assert message == (
            "案件 K-1 已销号，只能重开（reopen）、更正（correct_site）或标记（flag）"
            "（另一会话刚刚写入了此案件，已按最新记录重新核对）"
        )
        closing = [e for e in first.history("K-1") if type(e).__name__ == "ClosedOut"]
        assert [e.basis for e in closing] == ["乙"]  # type: ignore[attr-defined]
    finally:
        first.close()
        second.close()
