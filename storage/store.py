"""The event store: opening a SQLite file or a PostgreSQL schema, reading events, cases and the
campaign back, appending stored events. No business rule is checked here (see service/)."""

import base64
import binascii
import contextlib
import ctypes
import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlparse
from uuid import UUID

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, Notification, PersistenceError, StoredEvent

from domain import campaign as campaign_rules
from domain import case as case_rules
from domain import events as e
from domain.campaign import CAMPAIGN_ID, Campaign, load_config
from domain.case import Case
from domain.errors import DomainError
from domain.values import china_today, normal_ref, printable
from storage import chain
from storage.mapper import OrjsonTranscoder, PydanticMapper
from storage.sqlite import LedgerRecorder, LogRow, Write

PAGE = 5000
CHAIN_PAGE = 20000
LINK_ROWS = 20  # link rows read at a time (each holds a batch's links)
SPLIT_VERIFY = 200_000  # events from which verify checks the second half in another process


def helper_pool(
    workers: int = 1,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """Helper processes, started fresh (no shared handles), that die with this process: a
    `landledger` killed with kill -9 would otherwise leave its helper folding or verifying for
    minutes, and with it multiprocessing's resource tracker, which waits on their pipes."""
    spawn = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        workers,
        mp_context=spawn,
        initializer=_start_helper,
        initargs=(os.getpid(), initializer, initargs),
    )


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _start_helper(
    parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> None:
    """In the helper: be killed when the parent dies, then the pool's own initializer."""
    if sys.platform == "linux":
        # Sent when the thread that started this process ends: the pool starts it from the
        # thread that submits the work, which waits for the result.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    if initializer is not None:
        initializer(*initargs)


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def default_db_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "landledger" / "landledger.db"


def store_env(db: str | None) -> dict[str, str]:
    """`postgresql://user@host:port/dbname[?schema=S]` selects PostgreSQL; anything else is a
    SQLite file (created when missing; its folder too, at the default location only)."""
    if db and db.startswith(("postgresql://", "postgres://")):
        url = urlparse(db)
        query = parse_qs(url.query)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": "storage.postgres:PostgresLedgerRecorder",
            "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_SCHEMA": query.get("schema", ["public"])[0],
            "POSTGRES_CONNECT_TIMEOUT": "5",
            # One connection opened at start (the library's default opens five): a dozen
            # offices starting at once stay well within the server's max_connections; the
            # pool still grows for the dashboard's threads.
            "POSTGRES_POOL_SIZE": "1",
        }
    path = Path(db) if db else default_db_path()
    if path.is_dir():
        raise DomainError(f"无法打开数据库：{path} 是一个目录，不是数据库文件")
    if not db:  # only the default location is made: a mistyped folder is an error
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or str(error)
            raise DomainError(f"无法打开数据库：无法创建目录 {path.parent}（{reason}）") from None
    elif not path.parent.is_dir():
        raise DomainError(
            f"无法打开数据库 {db}：目录 {path.parent} 不存在"
            "（请检查路径；只有默认位置的目录会自动创建）",
            field="db",
        )
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "APPLICATION_RECORDER_TOPIC": "storage.sqlite:SQLiteLedgerRecorder",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "30",
    }


def check_not_foreign(path: Path) -> None:
    """Refuse another program's SQLite database (tables, but no event log) before the library
    makes it WAL and adds our tables to it.

    Read through SQLite, never a plain file handle: closing one would drop the locks of this
    process's SQLite connections to the store (POSIX locks belong to the process)."""
    if not path.exists():
        return
    try:
        uri = f"{path.absolute().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error:
        return  # not a database, or not readable this way: opening it says which
    if tables and "stored_events" not in tables:
        raise DomainError(
            f"无法打开数据库：{path} 是其他程序的 SQLite 数据库，不是 LandLedger 的数据库"
            "（未做任何改动）"
        )


# What psycopg and its pool say when a server does not answer, or a connection ends midway.
NOT_ANSWERING = (
    "connection refused",
    "timeout expired",
    "couldn't get a connection",
    "failed to resolve host",
    "no route to host",
)
CONNECTION_LOST = ("terminating connection", "closed the connection", "connection is lost")


def failure_message(db: str | None, error: BaseException) -> str:
    """A database error as a person can act on it, in Chinese: which store, and what is wrong
    (read-only, locked, disk full, server not answering, connection lost), rather than the
    driver's English."""
    text = str(error)
    lowered = text.lower()
    if db and db.startswith(("postgresql://", "postgres://")):
        url = urlparse(db)
        server = f"{url.hostname or '127.0.0.1'}:{url.port or 5432}"
        missing = re.search(r'(database|role|schema) "([^"]*)" does not exist', text)
        if missing:
            what = {"database": "数据库", "role": "用户（role）", "schema": "模式（schema）"}
            return f"无法连接 PostgreSQL：服务器 {server} 上没有{what[missing[1]]}“{missing[2]}”"
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            return f"无法连接 PostgreSQL：服务器 {server} 拒绝了密码"
        if any(sign in lowered for sign in NOT_ANSWERING):
            return (
                f"无法连接 PostgreSQL：服务器 {server} 没有响应"
                "（地址、端口是否正确，服务器是否在运行？）"
            )
        if any(sign in lowered for sign in CONNECTION_LOST):
            return f"与 PostgreSQL 服务器 {server} 的连接中断，本次操作未完成，请稍后重试"
        return f"PostgreSQL 服务器 {server}：{text}"
    path = Path(db) if db else default_db_path()
    if "not a database" in lowered:
        return f"{path} 不是 SQLite 数据库文件，不是 LandLedger 的数据库"
    if "malformed" in lowered:
        return f"数据库 {path} 已损坏"
    if "readonly" in lowered or "read-only" in lowered or not _writable(path):
        return f"数据库 {path} 是只读的（文件或所在目录不可写），无法写入"
    if "locked" in lowered or "busy" in lowered:
        return f"数据库 {path} 正被另一个程序写入，等了 30 秒仍未轮到，本次未写入，请稍后重试"
    # SQLite may call a write that found no space an I/O error (extending the WAL, say).
    if (
        "disk is full" in lowered
        or "no space" in lowered
        or ("i/o error" in lowered and _free_space(path) < FULL)
    ):
        return f"数据库 {path} 所在磁盘已满，本次未写入，请清理磁盘空间后重试"
    if "i/o error" in lowered:
        return f"数据库 {path} 读写出错（磁盘 I/O 错误），本次未写入"
    return f"无法访问数据库 {path}：{text}"


def is_database_error(error: BaseException) -> bool:
    """Whether an error comes from the database (the library's, SQLite's or psycopg's) rather
    than from a bug: what `failure_message` explains."""
    psycopg = sys.modules.get("psycopg")  # loaded only by a PostgreSQL store
    return isinstance(error, PersistenceError | sqlite3.Error) or (
        psycopg is not None and isinstance(error, psycopg.Error)
    )


FULL = 1 << 20  # free bytes under which a disk counts as full


def _free_space(path: Path) -> int:
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return FULL


def _writable(path: Path) -> bool:
    """Whether this process may write the store and its folder (SQLite writes a journal
    beside it); a read-only file system counts, even for root."""
    folder = path.parent
    if not os.access(folder, os.W_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


CIPHER_TOPIC = "eventsourcing.cryptography:AESCipher"  # AES-GCM from the cryptography package


def new_cipher_key() -> str:
    """A new random 256-bit key, base64: what LANDLEDGER_CIPHER_KEY holds."""
    from eventsourcing.cryptography import AESCipher

    return AESCipher.create_key(32)


def cipher_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`LANDLEDGER_CIPHER_KEY` → the library's cipher settings; a malformed key is refused here
    with a clear message (the library would say only "Invalid key size")."""
    key = environ.get("LANDLEDGER_CIPHER_KEY", "").strip()
    if not key:
        return {}
    try:
        size = len(base64.b64decode(key, validate=True))
    except (binascii.Error, ValueError):
        size = 0
    if size not in (16, 24, 32):
        raise DomainError(
            "LANDLEDGER_CIPHER_KEY 无效：应为 landledger keygen 生成的密钥（32 字节，base64 编码）"
        )
    return {"CIPHER_TOPIC": CIPHER_TOPIC, "CIPHER_KEY": key}


class EventStore(Application[UUID]):
    name = "LandLedger"  # the tracking and environment name: kept from the first release

    def __init__(
        self,
        db: str | None = None,
        *,
        campaign_file: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        settings = {**store_env(db), **cipher_env(os.environ), **(env or {})}
        postgres = settings["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
        if not postgres:
            check_not_foreign(Path(settings["SQLITE_DBNAME"]))
        try:
            if postgres:
                from storage.postgres import check_connection  # SQLite users never import psycopg

                check_connection(settings)  # at once, not after the pool's 5 s of retries
            super().__init__(settings)
        except Exception as error:
            raise DomainError(failure_message(db, error)) from None
        self._campaign_file = campaign_file
        self.ledger_recorder = cast(LedgerRecorder, self.recorder)
        self._chain_linked = False  # the log has links (an old store's were made): see verify_chain
        try:
            self._check_key()
        except DomainError:
            self.close()
            raise

    def _check_key(self) -> None:
        """A store is encrypted from its first event or never: refuse a missing or wrong key
        (and a key for a store in clear) here, rather than fail on some event later."""
        first = self.ledger_recorder.log_page(0, 1)
        if not first:
            return
        state = first[0][4]
        cipher = self.mapper.cipher
        if cipher is not None:
            try:
                cipher.decrypt(state)
                return
            except Exception:
                if _is_json(state):
                    raise DomainError(
                        "此库未加密：打开它时不要设置 LANDLEDGER_CIPHER_KEY（加密只能在建库时选择）"
                    ) from None
                raise DomainError(
                    "密钥错误：LANDLEDGER_CIPHER_KEY 不是加密此库时用的密钥，无法读取"
                ) from None
        if not _is_json(state):
            raise DomainError("此库已加密：请设置环境变量 LANDLEDGER_CIPHER_KEY 为建库时用的密钥")

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(transcoder=OrjsonTranscoder(), mapper_class=PydanticMapper)

    @property
    def is_postgres(self) -> bool:
        return self.env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres"

    # The campaign --------------------------------------------------------------------------

    def campaign(self) -> Campaign:
        """The campaign as stored; on an empty store, the one its data file defines (it is
        recorded with the first batch, so opening or reading a store writes nothing)."""
        return self.stored_campaign() or campaign_rules.mutate(None, self.definition())

    def definition(self) -> e.CampaignDefined:
        """The campaign of a new store, from its data file."""
        config = load_config(self._campaign_file) if self._campaign_file else load_config()
        return e.CampaignDefined(
            originator_id=CAMPAIGN_ID,
            originator_version=1,
            timestamp=datetime.now(UTC),
            actor="system",
            on=china_today(),
            config=config,
        )

    def stored_campaign(self) -> Campaign | None:
        campaign = None
        for event in self.events_of(CAMPAIGN_ID):
            campaign = campaign_rules.mutate(campaign, event)
        return campaign

    # Cases ---------------------------------------------------------------------------------

    def events_of(self, originator_id: UUID) -> list[e.Event]:
        stored = self.recorder.select_events(originator_id)
        return [cast(e.Event, self.mapper.to_domain_event(s)) for s in stored]

    def case_id(self, ref: str) -> UUID:
        try:  # as the ref was stored: NFKC, no invisible characters, trimmed
            ref = normal_ref(ref)
        except ValueError:
            raise DomainError(
                f"编号 “{printable(ref)}” 含有无效字符，不存在", field="ref"
            ) from None
        found = self.ledger_recorder.case_ids([ref]).get(ref)
        if found is None:
            raise DomainError(f"编号 “{ref}” 不存在", field="ref")
        return found

    def case(self, ref: str) -> Case:
        return self.load_case(self.case_id(ref))

    def load_case(self, case_id: UUID) -> Case:
        case = None
        for event in self.events_of(case_id):
            case = case_rules.mutate(case, cast(e.CaseEvent, event))
        if case is None:
            raise DomainError(f"存储已损坏：案件对象 {case_id} 在编号索引中，却没有任何事件")
        return case

    def history(self, ref: str) -> list[e.CaseEvent]:
        return [cast(e.CaseEvent, event) for event in self.events_of(self.case_id(ref))]

    # The log -------------------------------------------------------------------------------

    def notifications(self, after: int = 0, page: int = PAGE) -> Iterator[Notification]:
        """The whole log in recorded order, read in pages from a position."""
        while True:
            rows = self.recorder.select_notifications(after, page, inclusive_of_start=False)
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1].id

    def all_events(self) -> Iterator[e.Event]:
        for notification in self.notifications():
            yield cast(e.Event, self.mapper.to_domain_event(notification))

    def last_position(self) -> int:
        """The position of the newest event: it moves whenever anyone records."""
        return self.recorder.max_notification_id() or 0

    def chain_head(self) -> tuple[int, int, bytes]:
        """(position, n, link) of the chain's newest link. A store written before the chain
        existed is linked here first, once (see storage/chain.py)."""
        head = self.ledger_recorder.chain_head()
        if head[1] == 0 and self.last_position():
            self.ledger_recorder.link_unlinked()
            head = self.ledger_recorder.chain_head()
        return head

    def fingerprint(self) -> str:
        """`N:HASH`: how many events the store holds and the hex of the chain's head. An export
        carries it; `verify --fingerprint` proves later that those N events are unchanged."""
        _, n, link = self.chain_head()
        return chain.fingerprint(n, link)

    def verify_chain(
        self,
        expected: tuple[int, bytes] | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        *,
        after: int = 0,
    ) -> chain.Check:
        """Recompute the chain from the stored events and compare it with the stored links (and
        with an earlier fingerprint's head). With `after`, only the events after that position,
        continuing from its stored link (what a read model's catch-up is about to fold).

        A large SQLite log is checked in two processes (the machines we run on have two
        cores): a helper checks the second half from the stored link at the middle, while this
        process checks the first half, which ends by comparing that very link. Together that is
        the whole chain, as if walked in one go."""
        if not self._chain_linked:  # link an old store's events first (asked once a process)
            self._chain_linked = self.chain_head()[1] > 0
        recorder = self.ledger_recorder
        total = recorder.count_events() if not after else 0
        if after or self.is_postgres or total < SPLIT_VERIFY:
            return self.verify_range(after, None, expected, progress, cancelled, total)
        covering = recorder.link_row_at(self.last_position() // 2)
        if covering is None:
            return self.verify_range(0, None, expected, progress, cancelled, total)
        middle, ordinal, _ = chain.head_of(covering)
        want = expected[0] if expected else 0
        with helper_pool() as pool:
            later = pool.submit(
                _verify_part,
                self.env["SQLITE_DBNAME"],
                middle,
                expected if want > ordinal else None,
            )

            def report(done: int, _: int) -> None:
                if progress is not None:
                    progress(min(2 * done, total), total)

            first = self.verify_range(
                0, middle, expected if want <= ordinal else None, report, cancelled, total
            )
            if first.problem is not None:
                later.cancel()
                return first
            second = later.result()
        if progress is not None:
            progress(second.checked, total)
        fingerprint_ok = first.fingerprint_ok if want <= ordinal else second.fingerprint_ok
        return chain.Check(second.ok, second.checked, second.head, second.problem, fingerprint_ok)

    def verify_range(
        self,
        after: int,
        upto: int | None,
        expected: tuple[int, bytes] | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        total: int = 0,
    ) -> chain.Check:
        """The chain of the events after one position and up to another (or the end)."""
        recorder = self.ledger_recorder
        start = (0, chain.GENESIS)
        covering = recorder.link_row_at(after) if after else None  # where the walk resumes
        if after:
            stored = chain.link_at(covering, after) if covering else None
            if stored is None:
                raise DomainError(f"存储完整性异常：位置 {after} 的事件没有链接")
            start = stored
        last = upto if upto is not None else 1 << 62

        def pages() -> Iterator[list[LogRow]]:
            position = after
            while rows := recorder.log_page(position, CHAIN_PAGE):
                if cancelled is not None and cancelled():
                    raise VerifyCancelled
                if rows[-1][0] > last:
                    rows = [row for row in rows if row[0] <= last]
                    if rows:
                        yield rows
                    return
                yield rows
                if len(rows) < CHAIN_PAGE:  # the last page: asking for an empty one costs a
                    return  # round trip, a tenth of a command's on PostgreSQL
                position = rows[-1][0]

        def links() -> Iterator[tuple[int, int, bytes]]:
            batch = [covering] if covering else recorder.link_rows(0, LINK_ROWS)
            more = covering is not None  # rows may follow the covering one
            while batch:
                for row in batch:
                    for triple in chain.unpacked(row):
                        if triple[0] > last:
                            return
                        if triple[0] > after:
                            yield triple
                if not more and len(batch) < LINK_ROWS:  # the last rows (as for pages)
                    return
                more = False
                batch = recorder.link_rows(batch[-1][0], LINK_ROWS)

        return chain.recompute(
            pages(), links(), total=total, expected=expected, progress=progress, start=start
        )

    def append(self, stored: Sequence[StoredEvent], refs: Sequence[tuple[str, UUID]]) -> None:
        """One transaction: the events, their links and the refs of the new cases, or nothing.
        Raises the library's IntegrityError when another session wrote first."""
        with self.appending() as write:
            write(stored, refs)

    @contextmanager
    def appending(self) -> Iterator[Write]:
        """One transaction written in parts (see LedgerRecorder.appending), or nothing."""
        try:
            with self.ledger_recorder.appending() as write:
                yield write
        except chain.ChainBroken as broken:
            raise DomainError(
                f"存储完整性异常：位置 {broken.position} 之后有没有链接的事件（不是由本系统写入），"
                "已拒绝写入。请运行 landledger verify 查看，并交管理员核查"
            ) from None


def _verify_part(path: str, after: int, expected: tuple[int, bytes] | None) -> chain.Check:
    """In a process of its own: the chain after a position, to the end."""
    store = EventStore(path)
    try:
        return store.verify_range(after, None, expected)
    finally:
        store.close()


def _is_json(state: bytes) -> bool:
    try:
        orjson.loads(state)
    except orjson.JSONDecodeError:
        return False
    return True


class VerifyCancelled(DomainError):
    def __init__(self) -> None:
        super().__init__("已取消核验")


def is_postgres_url(db: str | None) -> bool:
    """What store_env takes for PostgreSQL: for a command that must know before opening."""
    return bool(db) and str(db).startswith(("postgresql://", "postgres://"))
