"""Faults of the machine, not of the input: a locked database, a read-only file or folder, a
full disk, PostgreSQL unreachable or gone mid-batch, a wrong database or user, a file that is
not a LandLedger store, an empty `--db`. Each gives a clear Chinese message and exit 1, no
traceback, nothing half-written, and the next run works. Real processes of the CLI."""

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import cmd, find, jsonl

PG = "postgresql://postgres@127.0.0.1:5432"


def run(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--actor", "staff-1", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def refused(*args: str, stdin: str = "") -> str:
    """Run the CLI, expect exit 1 and a Chinese error; standard error."""
    code, out, err = run(*args, stdin=stdin)
    assert code == 1, (out, err)
    assert err.startswith("错误："), err
    return err


def batch(first: int, count: int) -> str:
    """`count` new cases from P-`first` on, found and stopped: two events each."""
    commands = []
    for n in range(first, first + count):
        commands += [find(f"P-{n}"), cmd("stop", f"P-{n}", "2022-02-11")]
    return jsonl(commands)


def events_in(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM stored_events").fetchone()[0])


def verified(db: str) -> None:
    code, out, err = run("--db", db, "verify")
    assert code == 0 and "核验通过" in out, err


def mount(*args: str) -> None:
    """`mount ARGS`, or skip the test saying why (it needs root, or a namespace that allows it)."""
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here, so this fault is not made: {done.stderr.strip()}")


def unmount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB file system of its own."""
    target = tmp_path / "disk"
    target.mkdir()
    mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(target))
    yield target
    unmount(target)


# Not a LandLedger store ---------------------------------------------------------------------


def test_an_empty_db_option_is_refused_not_taken_for_the_default(tmp_path: Path) -> None:
    home = tmp_path / "data"
    code, _, err = run("--db", "", "stats", env={"XDG_DATA_HOME": str(home)})
    assert code == 1
    assert "--db：不能为空" in err
    assert not home.exists()  # the default store was not made


def test_another_programs_sqlite_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    other = tmp_path / "crm.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
    before = other.read_bytes()
    for args in (["stats"], ["record"]):
        err = refused("--db", str(other), *args, stdin=batch(1, 1))
        assert "是其他程序的 SQLite 数据库，不是 LandLedger 的数据库" in err
    assert other.read_bytes() == before

    text = tmp_path / "notes.txt"
    text.write_text("购物清单\n", encoding="utf-8")
    assert "不是 SQLite 数据库文件" in refused("--db", str(text), "stats")
    assert text.read_text(encoding="utf-8") == "购物清单\n"
    assert "是一个目录" in refused("--db", str(tmp_path), "stats")


# Read-only, full, locked ----------------------------------------------------------------------


def test_a_read_only_folder_or_file(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    db = folder / "ledger.db"
    assert run("--db", str(db), "record", stdin=batch(1, 2))[0] == 0

    shown = tmp_path / "readonly"  # the same folder, read-only
    shown.mkdir()
    mount("--bind", str(folder), str(shown))
    try:
        mount("-o", "remount,bind,ro", str(shown))
        for args in (["record"], ["stats"]):
            err = refused("--db", str(shown / "ledger.db"), *args, stdin=batch(3, 1))
            assert f"数据库 {shown / 'ledger.db'} 是只读的" in err
    finally:
        unmount(shown)

    alone = folder / "alone.db"  # a read-only file in a folder that can be written
    alone.touch()
    mount("--bind", str(db), str(alone))
    try:
        mount("-o", "remount,bind,ro", str(alone))
        err = refused("--db", str(alone), "record", stdin=batch(3, 1))
        assert f"数据库 {alone} 是只读的" in err
    finally:
        unmount(alone)

    assert events_in(db) == 1 + 4  # the campaign and the first batch
    assert run("--db", str(db), "record", stdin=batch(3, 1))[0] == 0  # the next run works
    verified(str(db))


def test_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    db = small_disk / "ledger.db"
    assert run("--db", str(db), "record", stdin=batch(1, 1))[0] == 0
    before = events_in(db)
    filler = small_disk / "filler"

    def fill(leave: int) -> None:
        """Take all but `leave` bytes of the disk."""
        disk = os.statvfs(small_disk)
        with filler.open("ab") as out:
            out.write(b"\0" * max(disk.f_bavail * disk.f_frsize - leave, 0))

    fill(100_000)
    err = refused("--db", str(db), "record", stdin=batch(2, 300))
    assert f"数据库 {db} 所在磁盘已满" in err
    assert events_in(db) == before
    fill(0)
    err = refused("--db", str(db), "export", "ledger", "--out", str(small_disk / "台账.xlsx"))
    assert f"无法写入 {small_disk / '台账.xlsx'}：磁盘空间不足" in err
    err = refused("--db", str(db), "rebuild")  # its scratch file has no room
    assert f"数据库 {db} 所在磁盘已满" in err
    left = [p.name for p in small_disk.iterdir() if p.name not in ("ledger.db", "filler")]
    # no .part, no sheet, no scratch folder
    assert not [name for name in left if not name.startswith("ledger.db-")]

    filler.unlink()
    code, out, err = run("--db", str(db), "record", stdin=batch(2, 300))
    assert code == 0 and "已记录 600 条命令" in out, err
    verified(str(db))
    out_file = small_disk / "台账.xlsx"
    assert run("--db", str(db), "export", "ledger", "--out", str(out_file))[0] == 0


@pytest.mark.slow  # the lock must be held past the 30 s a writer waits
def test_a_database_locked_by_another_program(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    assert run("--db", str(db), "record", stdin=batch(1, 1))[0] == 0
    before = events_in(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program's write lock, held
    try:
        err = refused("--db", str(db), "record", stdin=batch(2, 5))
        assert f"数据库 {db} 正被另一个程序写入" in err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert events_in(db) == before
    assert run("--db", str(db), "record", stdin=batch(2, 5))[0] == 0
    verified(str(db))


# PostgreSQL -----------------------------------------------------------------------------------


def test_postgres_not_there_is_said_at_once(pg_database: str) -> None:
    err = refused("--db", "postgresql://postgres@127.0.0.1:1/x", "stats")
    assert "无法连接 PostgreSQL：服务器 127.0.0.1:1 没有响应" in err
    err = refused("--db", f"{PG}/no_such_database", "stats")
    assert "无法连接 PostgreSQL：服务器 127.0.0.1:5432 上没有数据库“no_such_database”" in err
    err = refused("--db", f"postgresql://no_such_role@127.0.0.1:5432/{pg_database}", "stats")
    assert "上没有用户（role）“no_such_role”" in err
    err = refused("--db", f"{PG}/{pg_database}?schema=no_such_schema", "stats")
    assert "上没有模式（schema）“no_such_schema”" in err


@pytest.mark.backends("postgres")
def test_postgres_connection_lost_mid_batch(db_url: str) -> None:
    """The writer's connection is ended while its batch waits inside its transaction: once, the
    batch is tried again on a new connection and written once; every time, it is refused whole."""
    assert run("--db", db_url, "record", stdin=batch(1, 1))[0] == 0
    schema = db_url.partition("schema=")[2]

    def count() -> int:
        with psycopg.connect(db_url.partition("?")[0]) as conn:
            row = conn.execute(f'SELECT count(*) FROM "{schema}".landledger_events').fetchone()
            return int(row[0]) if row else 0

    def cut_writers(hold: psycopg.Connection[object], stop: threading.Event, once: bool) -> None:
        """End each connection of this database waiting for a lock (the writer, in its batch);
        `once`: then let the writer's next try through."""
        with psycopg.connect(db_url.partition("?")[0], autocommit=True) as admin:
            while not stop.is_set():
                for (pid,) in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                ).fetchall():
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    cuts.append(pid)
                    if once:
                        hold.rollback()
                        return
                time.sleep(0.02)

    for forever, first in ((False, 2), (True, 100)):
        before = count()
        stop, cuts = threading.Event(), list[int]()
        with psycopg.connect(db_url.partition("?")[0]) as hold:
            # The writer inserts its events, then reads the hash chain's head: it waits there.
            hold.execute(f'LOCK TABLE "{schema}".chain_links IN ACCESS EXCLUSIVE MODE')
            cutter = threading.Thread(target=cut_writers, args=(hold, stop, not forever))
            cutter.start()
            try:
                code, out, err = run("--db", db_url, "record", stdin=batch(first, 50))
            finally:
                stop.set()
                cutter.join()
                hold.rollback()
        assert cuts
        if forever:
            assert code == 1 and "的连接中断，本次操作未完成" in err, err
            assert count() == before
        else:
            assert code == 0 and "已记录 100 条命令" in out, err
            assert count() == before + 100
    assert run("--db", db_url, "record", stdin=batch(100, 50))[0] == 0  # the next run works
    verified(db_url)


def test_an_export_killed_earlier_leaves_no_part_behind_the_next_one(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    code, _, err = run("--db", str(db), "record", stdin=batch(2, 3))
    assert code == 0, err
    killed = tmp_path / ".landledger-0123456789abcdef.xlsx.part"  # kill -9 left it an hour ago
    killed.write_bytes(b"PK\3\4 half a workbook")
    os.utime(killed, (time.time() - 3600, time.time() - 3600))
    running = tmp_path / ".landledger-fedcba9876543210.xlsx.part"  # another export's, now
    running.write_bytes(b"PK\3\4 being written")
    code, _, err = run("--db", str(db), "export", "ledger", "--out", str(tmp_path / "台账.xlsx"))
    assert code == 0, err
    assert not killed.exists() and running.exists()
    assert (tmp_path / "台账.xlsx").stat().st_size > 0
