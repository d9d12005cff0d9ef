"""Crash safety: `record --file`, `import` and `rebuild` killed with kill -9 at random moments.
Afterwards the store holds all of the batch or none of it, the read model catches up to exactly
one of those two states, `verify` passes, no process of the killed command is left running, and
the next run leaves no scratch folder or partial file beside the store. On PostgreSQL, the
server rolls a killed writer's transaction back: `record --file` is killed there too."""

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import cli, jsonl, stats

from domain.commands import parse_command
from service.demo import demo_commands
from service.ledger import LandLedger

BASE_CASES = 100  # recorded before each run
BATCH_CASES = 300  # what a run adds: about 1,400 events
# A kill comes at a random moment up to this many times a whole run's length (measured once):
# the machine may be busier when it kills than when it measured.
WINDOW = 1.25


@dataclass(frozen=True)
class Kind:
    """One command to kill, and the store's figures and size with none or all of its batch."""

    args: tuple[str, ...]
    before: dict[str, Any]
    after: dict[str, Any]
    events: tuple[int, int]  # (none, all)
    seconds: float  # a whole run, start to finish


@dataclass(frozen=True)
class Setting:
    base: Path  # a store holding the base cases
    base_file: Path  # their commands
    batch_file: Path  # the commands `record --file` adds
    kinds: dict[str, Kind]


def events_in(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM stored_events").fetchone()[0])


def launch(db: Path | str, args: tuple[str, ...]) -> subprocess.Popen[bytes]:
    """`landledger` in a process group of its own: whatever it starts is found by the group."""
    return subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "--db", str(db), "--actor", "staff-1", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def group_gone(pgid: int, wait: float = 10.0) -> bool:
    """Whether every process of the group has ended (within `wait` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setting]:
    """A base store, a command file and a sheet of new cases, and each command's outcome when
    it runs to the end (measured once, in a real process)."""
    folder = tmp_path_factory.mktemp("crash")
    base = folder / "base.db"
    ledger = LandLedger(str(base))
    config = ledger.campaign().config
    commands = demo_commands(config, BASE_CASES + BATCH_CASES, seed=15)
    refs = sorted({c["ref"] for c in commands})
    old = set(refs[:BASE_CASES])
    base_file = folder / "base.jsonl"
    base_file.write_text(jsonl([c for c in commands if c["ref"] in old]), encoding="utf-8")
    ledger.record([parse_command(c) for c in commands if c["ref"] in old], "staff-1")
    ledger.close()
    assert cli("--db", str(base), "stats")[0] == 0  # the read model caught up

    batch = folder / "batch.jsonl"
    batch.write_text(jsonl([c for c in commands if c["ref"] not in old]), encoding="utf-8")
    source = folder / "source.db"
    shutil.copy(base, source)
    assert cli("--db", str(source), "record", "--file", str(batch))[0] == 0
    sheet = folder / "sheet.xlsx"
    assert cli("--db", str(source), "export", "ledger", "--unmasked", "--out", str(sheet))[0] == 0

    before = stats(str(base))
    none = events_in(base)
    kinds = {}
    for name, args in (
        ("record", ("record", "--file", str(batch))),
        ("import", ("import", str(sheet))),
        ("rebuild", ("rebuild",)),
    ):
        db = folder / f"full-{name}.db"
        shutil.copy(base, db)
        started = time.monotonic()
        assert launch(db, args).wait() == 0
        seconds = time.monotonic() - started
        after = stats(str(db))
        if name != "rebuild":
            assert after != before
        kinds[name] = Kind(args, before, after, (none, events_in(db)), seconds)
    yield Setting(base, base_file, batch, kinds)


def kill(setting: Setting, name: str, run: Path, delay: float) -> Path:
    """Start the command on a copy of the base store and kill -9 it after `delay` seconds;
    every process it started must end with it. Returns the store."""
    run.mkdir()
    db = run / "ledger.db"
    shutil.copy(setting.base, db)
    process = launch(db, setting.kinds[name].args)
    try:
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert group_gone(process.pid), f"{name}: a process it started is still running"
    finally:
        if not group_gone(process.pid, wait=0):  # leave nothing running for the next test
            os.killpg(process.pid, signal.SIGKILL)
    return db


def check(setting: Setting, name: str, db: Path, *, rebuild: bool) -> str:
    """What a killed command left: all of its batch or none, the read model caught up to that,
    a chain that verifies, and (after this next run) no scratch folder or partial file.
    Returns which: "all" or "none"."""
    kind = setting.kinds[name]
    assert events_in(db) in kind.events
    outcome = "all" if events_in(db) == kind.events[1] and name != "rebuild" else "none"
    now = stats(str(db))
    assert now == (kind.after if events_in(db) == kind.events[1] else kind.before)
    code, out, err = cli("--db", str(db), "verify")
    assert code == 0, err
    assert "核验通过" in out
    names = [p.name for p in db.parent.iterdir()]
    assert [n for n in names if n.startswith((".rebuild-", ".landledger-"))] == []
    if rebuild:  # the store goes on working: a rebuild gives the same figures
        assert cli("--db", str(db), "rebuild")[0] == 0
        assert stats(str(db)) == now
    return outcome


@pytest.mark.parametrize("name", ["record", "import", "rebuild"])
def test_kill_9_leaves_all_or_nothing(setting: Setting, name: str, tmp_path: Path) -> None:
    rng = random.Random(f"quick-{name}")
    for attempt in range(2):
        delay = rng.uniform(0, WINDOW * setting.kinds[name].seconds)
        db = kill(setting, name, tmp_path / f"run{attempt}", delay)
        check(setting, name, db, rebuild=attempt == 0)


@pytest.mark.slow
def test_a_hundred_random_kills(setting: Setting, tmp_path: Path) -> None:
    """Two kills at a time (the machines have two cores); each store is checked here, in this
    thread, while the next kills run."""
    seed = int(os.environ.get("LANDLEDGER_CRASH_SEED") or time.time_ns() % 10**9)
    rng = random.Random(seed)
    names = [("record", "import", "rebuild")[n % 3] for n in range(100)]
    delays = [rng.uniform(0, WINDOW * setting.kinds[name].seconds) for name in names]
    outcomes: Counter[str] = Counter()
    with ThreadPoolExecutor(2) as pool:
        stores = [
            pool.submit(kill, setting, name, tmp_path / f"run{n}", delay)
            for n, (name, delay) in enumerate(zip(names, delays, strict=True))
        ]
        for n, (name, store) in enumerate(zip(names, stores, strict=True)):
            try:
                outcome = check(setting, name, store.result(), rebuild=n % 20 == 0)
            except AssertionError as error:
                raise AssertionError(
                    f"run {n} ({name}), LANDLEDGER_CRASH_SEED={seed}: {error}"
                ) from error
            outcomes[f"{name} {outcome}"] += 1
    print(json.dumps({"seed": seed, **outcomes}))  # how many kills came before the commit


def events_on_postgres(url: str) -> int:
    schema = url.partition("schema=")[2]
    with psycopg.connect(url.partition("?")[0]) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{schema}".landledger_events').fetchone()
        return int(row[0]) if row else 0


@pytest.mark.backends("postgres")
def test_kill_9_of_record_on_postgres(setting: Setting, new_store: Callable[[], str]) -> None:
    """The server rolls back a killed writer's transaction: all of the file or none."""
    kind = setting.kinds["record"]
    batch = kind.events[1] - kind.events[0]
    rng = random.Random("postgres")
    for _ in range(3):
        url = new_store()
        assert cli("--db", url, "record", "--file", str(setting.base_file))[0] == 0
        before = events_on_postgres(url)
        process = launch(url, ("record", "--file", str(setting.batch_file)))
        try:
            time.sleep(rng.uniform(0, WINDOW * kind.seconds))
            process.send_signal(signal.SIGKILL)
            process.wait()
            assert group_gone(process.pid)
        finally:
            if not group_gone(process.pid, wait=0):
                os.killpg(process.pid, signal.SIGKILL)
        assert events_on_postgres(url) in (before, before + batch)
        whole = events_on_postgres(url) == before + batch
        assert stats(url) == (kind.after if whole else kind.before)
        code, out, err = cli("--db", url, "verify")
        assert code == 0 and "核验通过" in out, err
