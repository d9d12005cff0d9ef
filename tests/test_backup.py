"""`landledger backup F` (issue 15): a consistent copy of a live SQLite store, taken while another
process records; restored by copying it into place, it verifies and holds a prefix of the log,
whole batches only. Bad targets and PostgreSQL get a Chinese message and exit 1."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from helpers import cli, find, jsonl

# A writer in another process: batches of two commands (a new case, then its stop), until told
# to stop by a file or after a bounded number of batches.
WRITER = """
import sys
from pathlib import Path
from tui.cli import main
db, folder = sys.argv[1], Path(sys.argv[2])
for n in range(1, 400):
    if (folder / "stop").exists():
        break
    path = folder / "batch.jsonl"
    path.write_text(
        '{"cmd": "find_site", "ref": "B-%d", "on": "2022-02-10", "source": "巡查", '
        '"township": "苏店镇", "unit": "苏店自然资源所", "violation_types": ["占用耕地"], '
        '"area_m2": "100"}\\n{"cmd": "stop", "ref": "B-%d", "on": "2022-02-11"}\\n' % (n, n),
        encoding="utf-8",
    )
    assert main(["--db", db, "record", "--file", str(path)]) == 0
"""


def log(path: Path) -> list[tuple[int, bytes]]:
    with closing(sqlite3.connect(path)) as conn:
        return list(conn.execute("SELECT rowid, state FROM stored_events ORDER BY rowid"))


def events(path: Path) -> int:
    return len(log(path))


@pytest.mark.backends("sqlite")  # SQLite's backup API; PostgreSQL is refused below
def test_a_backup_taken_while_another_process_records_restores_and_verifies(
    db_url: str, tmp_path: Path
) -> None:
    store = Path(db_url)
    first = tmp_path / "first.jsonl"
    first.write_text(jsonl([find("A-1")]), encoding="utf-8")
    assert cli("--db", db_url, "record", "--file", str(first))[0] == 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, db_url, str(tmp_path)], env=env, stderr=subprocess.PIPE
    )
    copies: list[tuple[Path, int]] = []
    try:
        for n in range(3):
            seen = events(store)
            deadline = time.monotonic() + 60
            while events(store) == seen and writer.poll() is None:  # the writer is recording
                assert time.monotonic() < deadline, "the writer recorded nothing in 60 s"
                time.sleep(0.05)
            copy = tmp_path / f"backup{n}.db"
            code, out, err = cli("--db", db_url, "backup", str(copy))
            assert (code, err) == (0, ""), err
            held = events(copy)
            assert out.startswith(f"已备份 {db_url} → {copy}：{held} 个事件"), out
            copies.append((copy, held))
    finally:
        (tmp_path / "stop").touch()
        _, writer_err = writer.communicate(timeout=120)
    assert writer.returncode == 0, writer_err.decode()
    live = log(store)
    assert copies[-1][1] > copies[0][1] > 2  # taken while the log grew
    for copy, held in copies:
        # Whole batches: the campaign, A-1, then two events a batch.
        assert held % 2 == 0
        assert log(copy) == live[:held]  # a prefix of the log, byte for byte
        restored = tmp_path / "restored" / "landledger.db"
        restored.parent.mkdir(exist_ok=True)
        for leftover in restored.parent.iterdir():  # a restore replaces the -wal and -shm too
            leftover.unlink()
        shutil.copyfile(copy, restored)
        code, out, err = cli("--db", str(restored), "verify")
        assert code == 0 and f"核验通过：{held} 个事件" in out, err
        code, out, err = cli("--db", str(restored), "stats", "--json")
        assert code == 0, err
        assert json.loads(out)["total"]["stopped"] == (held - 2) // 2
        code, out, err = cli("--db", str(restored), "history", f"B-{(held - 2) // 2}")
        assert code == 0 and len(out.splitlines()) == 2, err
    assert not list(tmp_path.glob(".backup*"))  # no partial copy left beside


@pytest.mark.backends("sqlite")
def test_an_existing_file_is_kept_unless_forced(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(jsonl([find("A-1")]), encoding="utf-8")
    assert cli("--db", db_url, "record", "--file", str(path))[0] == 0
    target = tmp_path / "old.db"
    target.write_bytes(b"an older backup")
    code, out, err = cli("--db", db_url, "backup", str(target))
    assert (code, out) == (1, "")
    assert err == f"错误：备份文件：{target} 已存在，未覆盖；确认覆盖请加 --force\n"
    assert target.read_bytes() == b"an older backup"
    code, out, err = cli("--db", db_url, "backup", str(target), "--force")
    assert code == 0 and events(target) == 2, err


@pytest.mark.backends("sqlite")
def test_bad_paths_are_refused_in_chinese_and_nothing_is_made(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(jsonl([find("A-1")]), encoding="utf-8")
    assert cli("--db", db_url, "record", "--file", str(path))[0] == 0
    missing = tmp_path / "missing.db"
    text = tmp_path / "notes.txt"
    text.write_text("不是数据库", encoding="utf-8")
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
    cases = [
        ((db_url, str(tmp_path / "no-such-folder" / "b.db")), "备份文件：目录 ", "不存在"),
        ((db_url, str(tmp_path)), "备份文件：", "是一个目录，请给出文件名"),
        ((db_url, db_url), "备份文件：不能是数据库文件本身", ""),
        ((str(missing), str(tmp_path / "b.db")), f"数据库 {missing} 不存在", ""),
        ((str(other), str(tmp_path / "b.db")), f"无法读取 {other}：不是 LandLedger 数据库", ""),
        ((str(text), str(tmp_path / "b.db")), f"无法读取 {text}：不是 SQLite 数据库，未备份", ""),
    ]
    for (db, out), *expected in cases:
        before = sorted(p.name for p in tmp_path.iterdir())
        code, printed, err = cli("--db", db, "backup", out)
        assert (code, printed) == (1, ""), err
        assert err.startswith("错误：") and all(part in err for part in expected), err
        assert "Traceback" not in err
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # no file made


@pytest.mark.backends("postgres")
def test_postgresql_is_told_to_use_pg_dump(db_url: str) -> None:
    code, out, err = cli("--db", db_url, "backup", "b.dump")
    assert (code, out) == (1, "")
    assert "pg_dump -Fc" in err and "pg_restore" in err and err.startswith("错误：PostgreSQL")
    assert not Path("b.dump").exists()


@pytest.mark.backends("sqlite")
def test_a_full_disk_leaves_no_partial_backup_and_keeps_the_old_one(
    db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(jsonl([find(f"A-{n}", note="备注" * 400) for n in range(60)]), encoding="utf-8")
    assert cli("--db", db_url, "record", "--file", str(path))[0] == 0
    assert Path(db_url).stat().st_size > 200_000
    disk = tmp_path / "small-disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here for a small tmpfs")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        old = disk / "backup.db"
        old.write_bytes(b"yesterday's backup")
        code, out, err = cli("--db", db_url, "backup", str(old), "--force")
        assert (code, out) == (1, ""), out
        assert err == f"错误：无法备份到 {old}：磁盘空间不足，未写入任何文件\n", err
        assert sorted(p.name for p in disk.iterdir()) == ["backup.db"]  # nothing half-written
        assert old.read_bytes() == b"yesterday's backup"
    finally:
        subprocess.run(["umount", str(disk)], check=True)
