"""Tamper evidence on real stores, both backends: the store is edited underneath LandLedger (the
sqlite3 module on the SQLite file, psycopg on the PostgreSQL schema), then `verify` must find and
name the first difference, `rebuild` must refuse, and an earlier fingerprint must catch what the
stored links alone cannot (the tail cut off with its links; the links rewritten to match)."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from array import array
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest
from helpers import cli, cmd, find, jsonl, record, stats

from service.ledger import LandLedger
from storage import chain

ROOT = Path(__file__).resolve().parent.parent


class Raw:
    """The store's tables, edited directly: what an intruder with the database file can do."""

    def __init__(self, db: str) -> None:
        self.postgres = db.startswith("postgresql://")
        if self.postgres:
            url = urlparse(db)
            schema = parse_qs(url.query)["schema"][0]
            self.conn: Any = psycopg.connect(db.split("?")[0], autocommit=True)
            self.conn.execute(f'SET search_path TO "{schema}"')
            self.pos = "notification_id"
        else:
            self.conn = sqlite3.connect(db, isolation_level=None)
            self.pos = "rowid"

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        sql = sql.replace("POS", self.pos)
        if self.postgres:  # the library names the table after the application there
            sql = sql.replace("?", "%s").replace("stored_events", "landledger_events")
        cursor = self.conn.execute(sql, params)
        return [tuple(r) for r in cursor.fetchall()] if cursor.description else []

    def state(self, position: int) -> bytes:
        return bytes(self.run("SELECT state FROM stored_events WHERE POS = ?", (position,))[0][0])

    def set_state(self, position: int, state: bytes) -> None:
        self.run("UPDATE stored_events SET state = ? WHERE POS = ?", (state, position))

    def links(self) -> list[tuple[int, int, bytes]]:
        """The stored links, one (position, n, link) an event."""
        rows = self.run("SELECT first, n, positions, links FROM chain_links ORDER BY first")
        return [t for r in rows for t in chain.unpacked((r[0], r[1], bytes(r[2]), bytes(r[3])))]

    def set_links(self, triples: list[tuple[int, int, bytes]]) -> None:
        """Replace the link table by these links (as one stored row)."""
        self.run("DELETE FROM chain_links")
        positions = array("q", [p for p, _, _ in triples]).tobytes()
        row = (triples[0][0], triples[0][1], positions, b"".join(link for _, _, link in triples))
        self.run("INSERT INTO chain_links VALUES (?, ?, ?, ?)", row)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def store(db_url: str) -> tuple[str, str]:
    """A store of 5 cases (1 + 5 + 10 events), its read model built; and its fingerprint."""
    with_ledger = LandLedger(db_url)
    refs = [f"T-{n}" for n in range(5)]
    record(with_ledger, *[find(r, party_name="赵铁柱") for r in refs])
    record(
        with_ledger,
        *[cmd("stop", r, "2022-02-11", order_no=f"停{r}") for r in refs],
        *[cmd("file_case", r, "2022-02-12", case_no=f"立{r}") for r in refs],
    )
    fingerprint = with_ledger.fingerprint()
    with_ledger.close()
    assert cli("--db", db_url, "stats", "--json")[0] == 0  # the read model caught up
    return db_url, fingerprint


def verify(db: str, *args: str) -> tuple[int, str, str]:
    return cli("--db", db, "verify", *args)


def refused_rebuild(db: str, where: str) -> None:
    before = stats(db)
    code, _, err = cli("--db", db, "rebuild")
    assert code == 1 and "拒绝重建" in err and where in err, err
    assert stats(db) == before  # the read model is kept


def test_an_untouched_store_verifies_and_so_does_its_fingerprint(
    store: tuple[str, str], tmp_path: Path
) -> None:
    db, fingerprint = store
    code, out, err = verify(db)
    assert code == 0, err
    assert "核验通过：16 个事件" in out and f"数据指纹 {fingerprint}" in out
    assert verify(db, "--fingerprint", fingerprint)[0] == 0
    # History grows: the earlier fingerprint still proves the first 16 events unchanged.
    with _opened(db) as app:
        record(app, find("T-9"))
    code, out, _ = verify(db, "--fingerprint", fingerprint)
    assert code == 0 and "其前 16 个事件未被改动" in out
    code, _, err = verify(db, "--fingerprint", "16:abc")
    assert code == 1 and "--fingerprint" in err


class _opened:
    def __init__(self, db: str) -> None:
        self.app = LandLedger(db)

    def __enter__(self) -> LandLedger:
        return self.app

    def __exit__(self, *_: object) -> None:
        self.app.close()


def test_one_changed_byte_is_found_and_named(store: tuple[str, str]) -> None:
    db, fingerprint = store
    raw = Raw(db)
    state = raw.state(8)  # the second case's stop
    at = state.index(b"T-1") + 2
    raw.set_state(8, state[:at] + b"7" + state[at + 1 :])
    raw.close()
    code, _, err = verify(db)
    assert code == 1
    assert "第 8 个事件（位置 8）与其链接不符" in err
    assert "案件 T-7" in err and "制止（Stopped）" in err  # what the forged bytes now say
    assert "记录于 " in err and "操作人 staff-1" in err
    refused_rebuild(db, "第 8 个事件")
    assert verify(db, "--fingerprint", fingerprint)[0] == 1


def test_a_deleted_event_is_found_and_named(store: tuple[str, str]) -> None:
    db, _ = store
    raw = Raw(db)
    raw.run("DELETE FROM stored_events WHERE POS = 9")
    raw.close()
    code, _, err = verify(db)
    assert code == 1
    assert "第 9 个事件（位置 10）之前缺少 1 个事件：事件被删除" in err and "案件 T-3" in err
    refused_rebuild(db, "缺少 1 个事件")


def test_two_swapped_states_are_found(store: tuple[str, str]) -> None:
    db, _ = store
    raw = Raw(db)
    a, b = raw.state(7), raw.state(12)  # a stop and a filing
    raw.set_state(7, b)
    raw.set_state(12, a)
    raw.close()
    code, _, err = verify(db)
    assert code == 1 and "第 7 个事件（位置 7）与其链接不符" in err and "案件 T-0" in err
    refused_rebuild(db, "第 7 个事件")


def test_a_truncated_tail_is_found(store: tuple[str, str]) -> None:
    db, fingerprint = store
    raw = Raw(db)
    raw.run("DELETE FROM stored_events WHERE POS > 13")
    code, _, err = verify(db)
    assert code == 1 and "日志末尾缺少 3 个事件" in err
    refused_rebuild(db, "末尾缺少 3 个事件")
    # Cut with its links too, the chain is whole again: only the earlier fingerprint knows.
    raw.set_links([t for t in raw.links() if t[0] <= 13])
    raw.close()
    assert verify(db)[0] == 0
    code, _, err = verify(db, "--fingerprint", fingerprint)
    assert code == 1 and "库中只有 13 个事件，少于数据指纹" in err and "记录的 16 个" in err


def test_a_forged_event_is_found_and_later_writes_refused(store: tuple[str, str]) -> None:
    db, _ = store
    raw = Raw(db)
    first, version, topic, state = raw.run(
        "SELECT originator_id, originator_version, topic, state FROM stored_events WHERE POS = 12"
    )[0]
    raw.run(
        "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
        "VALUES (?, ?, ?, ?)",
        (first, version + 1, topic, bytes(state).replace("立T-0".encode(), "立T-X".encode())),
    )
    raw.close()
    code, _, err = verify(db)
    assert code == 1 and "第 17 个事件（位置 17）没有链接：不是由本系统写入" in err
    assert "案件 T-0" in err
    code, _, err = cli("--db", db, "rebuild")
    assert code == 1 and "拒绝重建" in err and "没有链接" in err
    # Nor does a catch-up fold it into the figures.
    code, _, err = cli("--db", db, "stats")
    assert code == 1 and "未通过完整性核验，读模型未更新" in err
    code, _, err = cli("--db", db, "record", stdin=jsonl([find("T-10")]))
    assert code == 1 and "存储完整性异常" in err


def test_links_rewritten_to_match_a_forgery_are_caught_by_an_earlier_fingerprint(
    store: tuple[str, str],
) -> None:
    db, fingerprint = store
    raw = Raw(db)
    state = raw.state(3)  # the second case found
    raw.set_state(3, state.replace("赵铁柱".encode(), "钱铁柱".encode()))
    # The intruder knows the algorithm and rewrites every link from there on.
    rows = raw.run(
        "SELECT POS, originator_id, originator_version, topic, state FROM stored_events "
        "WHERE POS >= 3 ORDER BY POS"
    )
    kept = [t for t in raw.links() if t[0] < 3]
    sources = [(r[0], _hex(r[1]), r[2], r[3], bytes(r[4])) for r in rows]
    forged = list(chain.unpacked(chain.extend(2, kept[-1][2], sources)))
    raw.set_links(kept + forged)
    raw.close()
    assert verify(db)[0] == 0  # the stored chain is consistent again
    code, _, err = verify(db, "--fingerprint", fingerprint)
    assert code == 1 and f"前 16 个事件与数据指纹 {fingerprint} 不符" in err
    assert "链接表也被改写" in err


def _hex(originator: Any) -> str:
    return originator if isinstance(originator, str) else str(originator.hex)


def test_the_standalone_script_recomputes_an_exports_fingerprint(
    store: tuple[str, str], tmp_path: Path
) -> None:
    db, fingerprint = store
    for options in ([], ["--unmasked"], ["--as-of", "2022-02-11"]):
        out = tmp_path / "events.jsonl"
        assert cli("--db", db, "export", "events", "--out", str(out), *options)[0] == 0
        head = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
        assert head["fingerprint"] == fingerprint
        script = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "fingerprint.py"), str(out)],
            capture_output=True,
            text=True,
        )
        assert script.returncode == 0 and script.stdout.split()[0] == fingerprint, script.stdout
        assert verify(db, "--fingerprint", head["fingerprint"])[0] == 0
    # The unmasked export carries the stored JSON: an edited line no longer matches, whether
    # the edit is in its readable fields or in the stored JSON.
    assert cli("--db", db, "export", "events", "--out", str(out), "--unmasked")[0] == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    last = json.loads(lines[-1])
    for edited in (
        {**last, "fields": {**last["fields"], "case_no": "立T-5"}},
        {**last, "state": last["state"].replace("立T-4", "立T-5")},
    ):
        out.write_text("\n".join([*lines[:-1], json.dumps(edited, ensure_ascii=False)]), "utf-8")
        script = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "fingerprint.py"), str(out)],
            capture_output=True,
            text=True,
        )
        assert script.returncode == 1 and "differs from its stored state" in script.stderr
    assert len((ROOT / "tools" / "fingerprint.py").read_text().splitlines()) <= 40


def test_the_script_and_verify_agree_on_the_algorithm() -> None:
    """The README's definition, written out independently."""
    state = b'{"a":1}'
    entry = f"7|{'ab' * 16}|3|T|{hashlib.sha256(state).hexdigest()}".encode()
    expected = hashlib.sha256(bytes(32) + entry).digest()
    assert chain.link_of(chain.GENESIS, 7, "ab" * 16, 3, "T", state) == expected


WRITER = """
import sys
from domain.commands import parse_command
from service.ledger import LandLedger
db, who = sys.argv[1], sys.argv[2]
app = LandLedger(db)
for batch in range(8):
    commands = [
        {"cmd": "find_site", "ref": f"C-{who}-{batch}-{i}", "on": "2022-02-10", "source": "巡查",
         "township": "苏店镇", "unit": "苏店自然资源所", "violation_types": ["占用耕地"],
         "area_m2": "10"}
        for i in range(25)
    ]
    app.record([parse_command(c) for c in commands], f"w{who}")
app.close()
"""


def test_concurrent_writers_never_fork_or_skip_the_chain(db_url: str) -> None:
    """Four processes recording at once into one SQLite file or one PostgreSQL schema."""
    with _opened(db_url) as app:
        record(app, find("C-0"))  # the campaign is defined once, before the race
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(k)], env=env) for k in range(4)
    ]
    assert [w.wait(timeout=240) for w in writers] == [0, 0, 0, 0]
    raw = Raw(db_url)
    events = raw.run("SELECT POS FROM stored_events ORDER BY POS")
    links = [(p, n) for p, n, _ in raw.links()]
    raw.close()
    assert len(events) == 2 + 4 * 8 * 25
    assert [p for p, _ in links] == [p for (p,) in events]  # one link an event, none skipped
    assert [n for _, n in links] == list(range(1, len(events) + 1))  # one chain, no fork
    code, _, err = verify(db_url)
    assert code == 0, err


def test_a_store_from_before_the_chain_is_linked_once(db_url: str) -> None:
    with _opened(db_url) as app:
        record(app, find("O-1"), find("O-2"))
    raw = Raw(db_url)
    raw.run("DELETE FROM chain_links")  # as a store written before this release
    raw.close()
    code, out, err = verify(db_url)
    assert code == 0 and "核验通过：3 个事件" in out
    assert "前 3 个事件写于哈希链启用之前" in err and "补记链接" in err
    with _opened(db_url) as app:
        record(app, find("O-3"))
    assert verify(db_url)[0] == 0


@pytest.mark.backends("postgres")
def test_events_inserted_the_old_way_then_copied_verify_as_one_chain(
    new_store: Any, db_url: str
) -> None:
    """A store written by the INSERT that took its positions from the sequence (releases before
    binary COPY), then by this one: positions follow on, the chain is one, and the sequence is
    moved past them for any insert that still draws on it."""
    scratch = new_store()
    with _opened(scratch) as app:
        record(app, find("O-1"), find("O-2"))
    with _opened(db_url) as app:
        record(app, find("O-0"))  # written by COPY: the campaign and one case
    source, raw = Raw(scratch), Raw(db_url)
    moved = source.run(
        "SELECT originator_id, originator_version, topic, state FROM stored_events "
        "WHERE originator_id <> (SELECT originator_id FROM stored_events WHERE POS = 1) "
        "ORDER BY POS"
    )
    for ref, case in source.run("SELECT ref, case_id FROM case_refs"):
        raw.run("INSERT INTO case_refs VALUES (?, ?)", (ref, case))
    # As the old insert did: positions from the column's default, then their links.
    positions = [
        raw.run(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?) RETURNING POS",
            row,
        )[0][0]
        for row in moved
    ]
    head_position, n, head = raw.links()[-1]
    assert positions == [head_position + 1, head_position + 2]
    sources = [
        (p, _hex(o), v, t, bytes(s)) for p, (o, v, t, s) in zip(positions, moved, strict=True)
    ]
    raw.run("INSERT INTO chain_links VALUES (?, ?, ?, ?)", chain.extend(n, head, sources))
    source.close()
    with _opened(db_url) as app:
        record(app, cmd("stop", "O-1", "2022-02-11", order_no="停O-1"), find("O-3"))
    events = raw.run("SELECT POS FROM stored_events ORDER BY POS")
    assert [p for (p,) in events] == list(range(1, 7))
    assert [p for p, _, _ in raw.links()] == list(range(1, 7))
    assert raw.run("SELECT last_value FROM landledger_events_notification_id_seq") == [(6,)]
    raw.close()
    code, out, err = verify(db_url)
    assert code == 0 and "核验通过：6 个事件" in out, err
    assert stats(db_url)  # the read model follows the log across both


def test_session_verify_reports_progress_and_can_be_cancelled(store: tuple[str, str]) -> None:
    import threading

    from service.audit import VerifyCancelled
    from service.session import Session

    db, fingerprint = store
    session = Session(db, "auditor")
    seen: list[tuple[int, int]] = []
    result = session.verify(fingerprint, lambda done, total: seen.append((done, total)))
    assert result.ok and result.checked == 16 and result.fingerprint == fingerprint
    assert result.fingerprint_ok is True and result.difference == "" and seen == [(16, 16)]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(VerifyCancelled):
        session.verify(None, None, cancel)
    raw = Raw(db)
    raw.run("DELETE FROM stored_events WHERE POS = 5")
    raw.close()
    result = session.verify(fingerprint)
    assert not result.ok and result.position == 6 and result.ref == "T-4"
    assert result.difference.startswith("第 5 个事件（位置 6）之前缺少 1 个事件")
    session.close()


@pytest.mark.parametrize("damaged", [0, 4, 18])
def test_a_large_log_is_verified_in_two_halves(
    store: tuple[str, str], monkeypatch: pytest.MonkeyPatch, damaged: int
) -> None:
    """On SQLite, from SPLIT_VERIFY events on, a helper process checks the second half."""
    import storage.store

    db, fingerprint = store
    monkeypatch.setattr(storage.store, "SPLIT_VERIFY", 5)
    with _opened(db) as app:
        record(app, *[find(f"S-{n}") for n in range(4)])
        final = app.fingerprint()  # halves: events 1-16 (two batches) and 17-20
    if damaged:
        raw = Raw(db)
        state = raw.state(damaged)
        raw.set_state(damaged, state.replace(b'"2022-02', b'"2021-02', 1))
        raw.close()
    for claimed in (None, fingerprint, final):
        code, out, err = verify(db, *(["--fingerprint", claimed] if claimed else []))
        if not damaged:
            assert code == 0 and "核验通过：20 个事件" in out and final in out, err
        else:
            assert code == 1 and f"第 {damaged} 个事件（位置 {damaged}）与其链接不符" in err
    forged = final[:-1] + ("0" if final[-1] != "0" else "1")
    assert verify(db, "--fingerprint", forged)[0] == 1
