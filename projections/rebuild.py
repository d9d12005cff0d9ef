"""A rebuild: drop the read model and fold the whole log again, in one transaction; on SQLite
the cases are split by id between processes (`fold_part` in a helper, into a scratch file that is
copied in after)."""

import fcntl
import gc
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from domain.errors import DomainError
from projections import stats
from projections.database import Database
from projections.facts import PAGE, facts_of
from projections.ledger import Fact
from storage.sqlite import LedgerRecorder, LogRow
from storage.store import EventStore, helper_pool

PARTS = 2  # processes folding a rebuild on SQLite (the machines we run on have two cores)
ID_RANGE = 2**40  # version ids of one part of a rebuild


SCRATCH = ".rebuild-"  # the prefix of a rebuild's scratch folder, beside the store


@contextmanager
def scratch_folder(store: Path) -> Iterator[Path]:
    """A hidden folder beside the store for the helpers' scratch files, locked while in use. A
    rebuild killed before it could remove its folder leaves it unlocked (the lock goes with the
    process), and the next rebuild or opening of the read model removes it."""
    remove_stale_scratch(store)
    with tempfile.TemporaryDirectory(prefix=SCRATCH, dir=store.parent) as folder:
        handle = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield Path(folder)
        finally:
            os.close(handle)


def remove_stale_scratch(store: Path) -> None:
    """Remove the scratch folders beside the store that no running rebuild holds."""
    for folder in store.parent.glob(SCRATCH + "*"):
        try:
            handle = os.open(folder, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a rebuild is using it
            continue
        else:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(handle)


def case_chunks(app: EventStore, total: int, part: int, parts: int) -> Iterator[list[Fact]]:
    """The facts of one part of the cases (by the last hex digit of their random id) up to the
    position `total`, in case order, a page or so at a time and never a case split between two.

    A rebuild folds in this order rather than the log's: each case's row is then worked on
    while it is in the processor's cache, and dropped when done. In log order every event
    touches a row last seen thousands of events before: a province's fold took a third longer,
    and held every row in memory to the end."""
    recorder = cast(LedgerRecorder, app.recorder)
    digits = None if parts == 1 else "".join(f"{d:x}" for d in range(16) if d % parts == part)
    after = ("0" * 32, 0)  # no case has the all-zero id
    carried: list[LogRow] = []
    while rows := recorder.case_page(after, PAGE, upto=total, digits=digits):
        after = (rows[-1][1], rows[-1][2])
        rows = carried + rows
        cut = len(rows)
        while cut and rows[cut - 1][1] == after[0]:  # the last case may go on in the next page
            cut -= 1
        carried = rows[cut:]
        if cut:
            yield list(facts_of(app, rows[:cut]))
    if carried:
        yield list(facts_of(app, carried))


def _finished(part: Future[None]) -> None:
    """Wait for another process's part; a damaged event found there is raised here."""
    try:
        part.result()
    except BrokenProcessPool:  # killed (out of memory, by hand): say so, keep the read model
        raise DomainError("重建未完成：辅助进程意外退出，读模型保持原样，请重试") from None


_folded: Any = None  # in a rebuild's helper process: the events each part has folded, shared


def _share_counts(folded: Any) -> None:
    global _folded
    _folded = folded


def fold_part(store: str, part: int, total: int, into: str) -> None:
    """In a process of its own: fold one part of the cases into a scratch file, as a read model
    of its own. Its version ids start at part × ID_RANGE, so the parts' ids never meet."""
    from projections.readmodel import ReadModel  # which mixes this module's Rebuilding in

    gc.disable()  # it makes no reference cycles: see service.session.without_cycle_collector
    app = EventStore(store)
    model = ReadModel(app, staging=into)

    def progress(events: int) -> None:
        _folded[part] += events

    try:
        with model.db.writing():
            model._fold(total, part, PARTS, part * ID_RANGE + 1, progress)
    finally:
        model.close()
        app.close()


class Rebuilding:
    """The rebuild's part of the read model (mixed into ReadModel)."""

    app: EventStore
    db: Database
    # The read model's own (projections.readmodel):
    _apply: Callable[..., int]
    _write_stats: Callable[[dict[Any, list[int]]], None]
    _add_stats: Callable[[dict[tuple[str, str], list[int]]], None]

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Drop the read model and fold the whole log again, in one transaction: if anything
        fails (a damaged store), the read model is left as it was.

        On SQLite the cases are split by id: other processes fold their parts into scratch files
        while this one folds its part into the read model (the fold is most of a rebuild's time);
        the scratch files are then copied in, in the same transaction. PostgreSQL folds here."""
        total = self.app.recorder.max_notification_id() or 0
        spawn = multiprocessing.get_context("spawn")  # fresh processes: no shared handles
        # The events each part has folded: shared with the helper processes on SQLite.
        folded = [0] if self.db.postgres else spawn.Array("q", PARTS, lock=False)

        def count(events: int) -> None:
            folded[0] += events
            if progress:
                progress(min(sum(folded), total), total)

        if self.db.postgres:
            with self.db.writing():
                self._reset()
                self._fold(total, 0, 1, 1, count)
                count(total)  # the campaign's events are in no part
                self.db.index()  # after loading: faster than keeping indexes up to date
            # The dashboard's counts and pages read only the ledger's indexes: an index-only
            # scan needs the visibility map, and the planner the statistics, now rather than
            # when autovacuum comes by (2 s at 200,000 cases; outside the transaction).
            self.db.conn.execute("VACUUM ANALYZE rm_ledger")
            return total
        store = Path(self.app.env["SQLITE_DBNAME"])
        names = [f"part{k}" for k in range(1, PARTS)]
        with scratch_folder(store) as folder:
            paths = [str(folder / f"{name}.db") for name in names]
            for name, path in zip(names, paths, strict=True):  # not allowed in a transaction
                self.db.conn.execute(f"ATTACH DATABASE ? AS {name}", (path,))
            try:
                with helper_pool(PARTS - 1, _share_counts, (folded,)) as pool:
                    others = [
                        pool.submit(fold_part, str(store), k, total, path)
                        for k, path in enumerate(paths, start=1)
                    ]
                    # Deferred: an immediate transaction would lock the scratch files as well.
                    with self.db.writing(immediate=False):
                        self._reset()
                        self._fold(total, 0, PARTS, 1, count)
                        for other in others:
                            _finished(other)
                        count(total)  # the campaign's events are in no part
                        self._copy_in(names, total)
                        self.db.index()
            finally:
                for name in names:
                    self.db.conn.execute(f"DETACH DATABASE {name}")
        return total

    def refill(self, facts: Iterable[Fact], position: int) -> None:
        """Drop the read model and fold these facts into it, in the order given, in this process
        and one transaction; the read model then stands at the log's `position`. A rebuild
        without its split and its reading of the log: bench/run.py's baseline gives it facts
        read with plain sqlite3."""
        with self.db.writing():
            self._reset()
            buckets: dict[tuple[Any, ...], list[int]] = {}
            self._apply(facts, 1, position, {}, buckets)
            self._write_stats(buckets)
            self.db.index()

    def _fold(
        self, total: int, part: int, parts: int, next_id: int, progress: Callable[[int], None]
    ) -> None:
        """Fold one part of the cases into this (empty) read model, a page of cases at a time;
        the statistics are written once, at the end."""
        buckets: dict[tuple[Any, ...], list[int]] = {}
        for facts in case_chunks(self.app, total, part, parts):
            next_id = self._apply(facts, next_id, total, {}, buckets)
            progress(len(facts))
        self._write_stats(buckets)

    def _reset(self) -> None:
        self.db.drop()
        self.db.tables()
        self.db.seed()

    def _copy_in(self, names: list[str], total: int) -> None:
        """Add the attached scratch files' rows to the read model being rebuilt."""
        next_ids = [self.db.rows("SELECT next_version FROM rm_tracking")[0][0]]
        for name in names:
            for table in ("rm_versions", "rm_ledger"):
                self.db.conn.execute(f"INSERT INTO {table} SELECT * FROM {name}.{table}")
            summed = ", ".join(stats.SUMMED)
            part = self.db.rows(f"SELECT grouping, key, {summed} FROM {name}.rm_stats")
            self._add_stats({(g, k): [int(v) for v in values] for g, k, *values in part})
            # WHERE true: SQLite's grammar needs it before an upsert's ON CONFLICT.
            self.db.conn.execute(
                f"INSERT INTO rm_due SELECT * FROM {name}.rm_due WHERE true ON CONFLICT "
                "(grouping, key, due_on) DO UPDATE SET n = rm_due.n + excluded.n"
            )
            next_ids += self.db.rows(f"SELECT next_version FROM {name}.rm_tracking")[0]
        self.db.many(
            "UPDATE rm_tracking SET position = ?, next_version = ?", [(total, max(next_ids))]
        )
