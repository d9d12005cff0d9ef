"""`landledger backup F`: a consistent copy of a live SQLite store, taken while others record.

The copy is the whole database file (events, refs, hash chain and the read model, which lives
in the same file): it opens as it is, and `verify` checks it. PostgreSQL has its own tools.
"""

import errno
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from domain.errors import DomainError
from domain.values import printable
from storage.backup import copy_database
from storage.store import default_db_path, is_postgres_url

POSTGRES_ADVICE = (
    "PostgreSQL 库请用 PostgreSQL 自带的工具备份和恢复："
    "pg_dump -Fc -f 备份文件 数据库名，恢复用 pg_restore（见 README 的 Backup and restore 一节）"
)


@dataclass(frozen=True)
class BackedUp:
    source: Path
    target: Path
    events: int
    size: int  # bytes


def backup(db: str | None, out: str, *, force: bool = False) -> BackedUp:
    """Copy the store `db` (default: the user's store) to `out`, which must not exist unless
    `force`. The copy is written beside `out` under a hidden name and renamed into place once
    complete: a failure (a full disk, a bad path) leaves no partial file and `out` untouched."""
    if is_postgres_url(db):
        raise DomainError(POSTGRES_ADVICE, field="db")
    source = Path(db) if db else default_db_path()
    if not out.strip():
        raise DomainError("备份文件：不能为空", field="out")
    target = Path(out)
    if not source.is_file():
        raise DomainError(f"数据库 {printable(str(source))} 不存在，没有可备份的内容", field="db")
    if target.is_dir():
        raise DomainError(f"备份文件：{printable(out)} 是一个目录，请给出文件名", field="out")
    if not target.parent.is_dir():
        raise DomainError(f"备份文件：目录 {printable(str(target.parent))} 不存在", field="out")
    if target.exists():
        if target.resolve() == source.resolve():
            raise DomainError("备份文件：不能是数据库文件本身", field="out")
        if not force:
            raise DomainError(
                f"备份文件：{printable(out)} 已存在，未覆盖；确认覆盖请加 --force", field="out"
            )
    try:
        handle, part = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
        os.close(handle)
    except OSError as error:
        raise DomainError(f"无法写入 {printable(out)}：{error.strerror or error}") from None
    try:
        events = copy_database(source, Path(part))
        with open(part, "rb") as written:  # on the disk before it takes the name
            os.fsync(written.fileno())
        os.replace(part, target)
    except LookupError as error:
        raise DomainError(
            f"无法读取 {printable(str(source))}：{error}，未备份",
            field="db",
        ) from None
    except (OSError, sqlite3.Error) as error:
        full = getattr(error, "errno", None) == errno.ENOSPC or (
            isinstance(error, sqlite3.Error) and "full" in str(error)
        )
        reason = "磁盘空间不足" if full else getattr(error, "strerror", None) or str(error)
        raise DomainError(f"无法备份到 {printable(out)}：{reason}，未写入任何文件") from None
    finally:
        for leftover in (part, f"{part}-journal", f"{part}-wal", f"{part}-shm"):
            if os.path.exists(leftover):
                os.remove(leftover)
    return BackedUp(source, target, events, target.stat().st_size)
