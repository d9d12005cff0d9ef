"""The event store: opening a SQLite file or a PostgreSQL schema, reading events, cases and the
campaign back, appending stored events. No business rule is checked here (see service/)."""

import base64
import binascii
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, unquote, urlparse
from uuid import UUID

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, Notification, StoredEvent

from domain import campaign as campaign_rules
from domain import case as case_rules
from domain import events as e
from domain.campaign import CAMPAIGN_ID, Campaign, load_config
from domain.case import Case
from domain.errors import DomainError
from domain.values import china_today, normal_ref, printable
from storage import chain
from storage.mapper import OrjsonTranscoder, PydanticMapper
from storage.sqlite import LedgerRecorder, LogRow

# Events and new refs checked under the log's write lock (EventStore.append).
Recheck = Callable[[], tuple[Sequence[StoredEvent], Sequence[tuple[str, UUID]]]]
PAGE = 5000
CHAIN_PAGE = 20000
SPLIT_VERIFY = 200_000  # events from which verify checks the second half in another process


def default_db_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "landledger" / "landledger.db"


def store_env(db: str | None) -> dict[str, str]:
    """`postgresql://user@host:port/dbname[?schema=S]` selects PostgreSQL; anything else is a
    SQLite file (created with its folder when missing)."""
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
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "APPLICATION_RECORDER_TOPIC": "storage.sqlite:SQLiteLedgerRecorder",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "30",
    }


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
        try:
            super().__init__(settings)
        except Exception as error:
            raise DomainError(f"无法打开数据库 {db or default_db_path()}：{error}") from None
        self._campaign_file = campaign_file
        self.ledger_recorder = cast(LedgerRecorder, self.recorder)
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
        self.chain_head()  # link an old store's events first
        recorder = self.ledger_recorder
        total = recorder.count_events() if not after else 0
        if after or self.is_postgres or total < SPLIT_VERIFY:
            return self.verify_range(after, None, expected, progress, cancelled, total)
        covering = recorder.link_row_at(self.last_position() // 2)
        if covering is None:
            return self.verify_range(0, None, expected, progress, cancelled, total)
        middle, ordinal, _ = chain.head_of(covering)
        want = expected[0] if expected else 0
        spawn = multiprocessing.get_context("spawn")  # fresh processes: no shared handles
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
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
        if after:
            stored = recorder.chain_at(after)
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
                position = rows[-1][0]

        def links() -> Iterator[tuple[int, int, bytes]]:
            covering = recorder.link_row_at(after) if after else None
            batch = [covering] if covering else recorder.link_rows(0, 20)
            while batch:
                for row in batch:
                    for triple in chain.unpacked(row):
                        if triple[0] > last:
                            return
                        if triple[0] > after:
                            yield triple
                batch = recorder.link_rows(batch[-1][0], 20)

        return chain.recompute(
            pages(), links(), total=total, expected=expected, progress=progress, start=start
        )

    def append(
        self,
        stored: Sequence[StoredEvent],
        refs: Sequence[tuple[str, UUID]],
        *,
        recheck: Recheck | None = None,
    ) -> None:
        """One transaction: the events, their links and the refs of the new cases, or nothing.
        Raises the library's IntegrityError when another session wrote first. With `recheck`,
        the log's write lock is taken first and `recheck()` gives the events and refs to write,
        checked on the store as it stands under that lock: no other session can write between
        the check and the write (each recorder's insert takes the same lock)."""
        try:
            self.recorder.insert_events(stored, refs=refs, recheck=recheck)
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
