"""Encryption at rest (LANDLEDGER_CIPHER_KEY): no party name, ID number or phone in clear in the
store's files (SQLite: the file, its WAL and shared memory) or tables (PostgreSQL), for the events
and the read model alike; a wrong, missing or malformed key is refused in Chinese with exit 1."""

import glob
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, cmd, find, jsonl
from test_integrity import Raw

NAME, ID_NO, PHONE = "赵铁柱", "110101199003071234", "13912345678"
SECRETS = [NAME.encode(), ID_NO.encode(), PHONE.encode()]


def key() -> str:
    code, out, _ = cli("keygen")
    assert code == 0
    return out.strip()


def fill(db: str) -> None:
    commands = [
        find(f"E-{n}", party_name=NAME, party_id_no=ID_NO, party_phone=PHONE) for n in range(3)
    ] + [cmd("stop", "E-1", "2022-02-11")]
    code, _, err = cli("--db", db, "record", stdin=jsonl(commands))
    assert code == 0, err


def stored_bytes(db: str) -> list[bytes]:
    """Every byte the store holds: its files on SQLite, every row of every table on PostgreSQL."""
    if not db.startswith("postgresql://"):
        return [Path(f).read_bytes() for f in glob.glob(db + "*")]
    raw = Raw(db)
    tables = raw.run(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    found = []
    for (table,) in tables:
        for row in raw.run(f'SELECT * FROM "{table}"'):
            found += [_bytes(value) for value in row]
    raw.close()
    return found


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    return str(value).encode()


def test_keygen_prints_a_new_key() -> None:
    a, b = key(), key()
    assert a != b and len(a) == 44 and a.endswith("=")


def test_an_encrypted_store_holds_no_personal_data_in_clear(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LANDLEDGER_CIPHER_KEY", key())
    fill(db_url)
    assert cli("--db", db_url, "rebuild")[0] == 0
    assert cli("--db", db_url, "stats", "--json")[0] == 0
    blobs = stored_bytes(db_url)
    assert sum(len(b) for b in blobs) > 3000
    for secret in SECRETS:
        assert not any(secret in blob for blob in blobs), secret
    assert any(
        "东和".encode() in b or "苏店镇".encode() in b for b in blobs
    )  # the rest is in clear
    # With the key, everything reads back.
    code, out, _ = cli("--db", db_url, "history", "E-1", "--unmasked")
    assert code == 0 and NAME in out and ID_NO in out and PHONE in out
    out_file = tmp_path / "ledger.xlsx"
    assert cli("--db", db_url, "export", "ledger", "--unmasked", "--out", str(out_file))[0] == 0
    from sheets import both

    cells = [str(v) for row in both(out_file) for v in row]
    assert NAME in cells and ID_NO in cells
    code, out, err = cli("--db", db_url, "verify")
    assert code == 0, err


def test_a_wrong_missing_or_malformed_key_is_refused(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANDLEDGER_CIPHER_KEY", key())
    fill(db_url)
    monkeypatch.setenv("LANDLEDGER_CIPHER_KEY", key())
    for command in (["stats"], ["history", "E-1"], ["verify"], ["record"]):
        code, out, err = cli("--db", db_url, *command, stdin=jsonl([find("E-9")]))
        assert (code, out) == (1, "") and "密钥错误" in err and "Traceback" not in err
    monkeypatch.delenv("LANDLEDGER_CIPHER_KEY")
    code, _, err = cli("--db", db_url, "stats")
    assert code == 1 and "此库已加密：请设置环境变量 LANDLEDGER_CIPHER_KEY" in err
    monkeypatch.setenv("LANDLEDGER_CIPHER_KEY", "not a key")
    code, _, err = cli("--db", db_url, "stats")
    assert code == 1 and "LANDLEDGER_CIPHER_KEY 无效" in err


def test_a_store_in_clear_refuses_a_key(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(db_url)
    monkeypatch.setenv("LANDLEDGER_CIPHER_KEY", key())
    code, _, err = cli("--db", db_url, "stats")
    assert code == 1 and "此库未加密" in err
