"""A consistent copy of a live SQLite store, for `landledger backup` (service/backup.py)."""

import sqlite3
from pathlib import Path


def copy_database(source: Path, target: Path) -> int:
    """Copy a live store into `target` with SQLite's online backup, all pages in one step: the
    copy is the database as of one commit, while writers in other processes go on (WAL lets
    them). Returns how many events the copy holds. Raises LookupError when `source` cannot be
    read as a store (no SQLite file, no event table), sqlite3.Error when the copy fails, with
    `target` possibly half-written: the caller removes it. The source is opened read-only, so
    a missing file is never created."""
    try:
        origin = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        names = {row[0] for row in origin.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as error:
        # SQLite's own words; the one a user meets most, in theirs.
        said = str(error)
        raise LookupError("不是 SQLite 数据库" if "not a database" in said else said) from None
    try:
        if "stored_events" not in names:
            raise LookupError("不是 LandLedger 数据库：没有事件表")
        copy = sqlite3.connect(target)
        try:
            origin.backup(copy)
            return int(copy.execute("SELECT count(*) FROM stored_events").fetchone()[0])
        finally:
            copy.close()
    finally:
        origin.close()
