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
