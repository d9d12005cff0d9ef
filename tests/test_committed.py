"""Issue 10's invariant: a `record` that exits non-zero wrote nothing, and whatever was committed
is reported as committed (a read-model failure after the commit is a warning, exit 0, and never
blocks the next command). And a file of 100,000 commands goes through on both backends without
shutting other writers out for longer than its own commit."""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, cmd, find, jsonl

from domain.campaign import load_config
from domain.commands import parse_command
from projections.database import Database
from projections.readmodel import ReadModel
from service.demo import demo_commands
from service.ledger import LandLedger


def recorded(db: str, tmp_path: Path, commands: list[dict[str, Any]]) -> tuple[int, str, str]:
    path = tmp_path / "commands.jsonl"
    path.write_text(jsonl(commands), encoding="utf-8")
    return cli("--db", db, "record", "--file", str(path))


def events(db: str) -> int:
    app = LandLedger(db)
    try:
        return app.ledger_recorder.count_events()
    finally:
        app.close()


def _fail(*_: Any, **__: Any) -> Any:
    raise RuntimeError("读模型故障（测试注入）")


@pytest.mark.parametrize(
    "breaks",
    [
        (ReadModel, "catch_up"),  # the fold itself
        (ReadModel, "_write_ledger"),  # a write inside the read model's transaction
        (Database, "create"),  # opening the read model
    ],
    ids=["catch-up", "write", "open"],
)
def test_a_read_model_failure_after_the_commit_is_reported_as_committed(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, breaks: tuple[type, str]
) -> None:
    monkeypatch.setattr(*breaks, _fail)
    code, out, err = recorded(db_url, tmp_path, [find("C-1"), find("C-2")])
    assert code == 0, err
    assert out == "已记录 2 条命令（2 个事件），涉及 2 个案件，其中新发现 2 个\n"
    assert err.startswith(
        "警告：以上记录已写入；读模型（台账、统计）暂未更新，将在下次查询时自动补上"
    )
    assert "Traceback" not in err
    assert events(db_url) == 3  # the campaign and the two sites: written once
    # The next command is not blocked, and is not a copy of the first.
    code, out, err = recorded(db_url, tmp_path, [cmd("stop", "C-1", "2022-02-11")])
    assert code == 0 and "已记录 1 条命令" in out, err
    assert events(db_url) == 4
    # Repeating the first file is refused: it was written, and said so.
    code, _, err = recorded(db_url, tmp_path, [find("C-1")])
    assert code == 1 and "编号 “C-1” 已存在" in err
    monkeypatch.undo()
    # Once the read model works again, it catches up with everything committed.
    code, out, err = cli("--db", db_url, "stats", "--json")
    assert code == 0, err
    total = json.loads(out)["total"]
    assert (total["found"], total["stopped"]) == (2, 1)


def test_a_rejected_file_writes_nothing_even_with_the_read_model_broken(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert recorded(db_url, tmp_path, [find("C-1")])[0] == 0
    before = events(db_url)
    monkeypatch.setattr(ReadModel, "catch_up", _fail)
    code, out, err = recorded(db_url, tmp_path, [find("C-3"), find("C-1")])
    assert (code, out) == (1, "") and "第2行 find_site：编号 “C-1” 已存在" in err
    assert events(db_url) == before


# 100,000 commands in one file -------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_a_file_of_100000_commands_and_a_second_writer(
    new_store: Callable[[], str], tmp_path: Path
) -> None:
    db = new_store()
    config = load_config()
    assert recorded(db, tmp_path, [find("W-0")])[0] == 0  # the campaign is defined
    commands = demo_commands(config, 25_000)[:100_000]
    big_file = tmp_path / "city.jsonl"
    big_file.write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in commands), encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    started = time.monotonic()
    big = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "--db", db, "record", "--file", str(big_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    second: dict[str, Any] = {}

    def write_one() -> None:
        app = LandLedger(db)
        try:
            second["result"] = app.record([parse_command(find("W-1"))], "second")
        finally:
            second["done"] = time.monotonic()
            app.close()

    time.sleep(5)  # the big file is being read, checked or written by now
    writer = threading.Thread(target=write_one)
    writer.start()
    out, err = big.communicate(timeout=600)
    big_done = time.monotonic()
    writer.join(timeout=120)
    assert big.returncode == 0, err.decode()
    assert "已记录 100000 条命令（100000 个事件）" in out.decode()
    assert second["result"].events == 1
    # The second writer waited at most for the big file's commit, not beyond it.
    assert second["done"] <= big_done + 10, (second["done"] - started, big_done - started)
    assert events(db) == 2 + 100_000 + 1
    code, stats_out, stats_err = cli("--db", db, "stats", "--json")
    assert code == 0, stats_err
    assert json.loads(stats_out)["total"]["found"] == 2 + sum(
        1 for c in commands if c["cmd"] == "find_site"
    )
