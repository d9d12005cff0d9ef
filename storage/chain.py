"""The hash chain over the event log: one link per stored event, in notification order.

    digest_n = SHA-256(state_n)                         the event's stored bytes, as stored
    entry_n  = "{position}|{originator id, 32 hex}|{version}|{topic}|{digest_n, 64 hex}"
    link_n   = SHA-256(link_{n-1} ‖ entry_n as UTF-8)   link_0 = 32 zero bytes

The state is the event's JSON exactly as stored (ciphertext when the store is encrypted); it
holds every field of the event, its recorded time and its actor. The fingerprint of a store is
`N:HASH`: the number of events and the hex of the N-th link.

The links live in the table `event_links` (position, n, link) beside the log and are written by
the recorders' inserts in the same transaction as the events, after the events took the log's
write lock (SQLite's one writer; PostgreSQL's `LOCK TABLE … EXCLUSIVE`): the previous link is
read under that lock, so two writers can never fork or skip the chain. Events written before
the chain existed are linked once, by the first insert or `verify` that finds them, and the
table `chain_meta` records when ("linked on <date>").

Everything here is plain computation; the SQL lives in the recorders (storage/sqlite.py,
storage/postgres.py).
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256

GENESIS = bytes(32)

# One row of the log with its stored link: position, originator id (hex), version, topic,
# state, and the stored ordinal and link (None when the event has no link).
ChainRow = tuple[int, str, int, str, bytes, int | None, bytes | None]
# The columns a link is computed from.
LinkSource = tuple[int, str, int, str, bytes]


class ChainBroken(Exception):
    """A writer found events without links after linked ones: the log was written around
    landledger. Nothing is written until `verify` has been looked at."""

    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


def link_of(
    prev: bytes, position: int, originator: str, version: int, topic: str, state: bytes
) -> bytes:
    digest = sha256(state).hexdigest()
    return sha256(prev + f"{position}|{originator}|{version}|{topic}|{digest}".encode()).digest()


def extend(n: int, prev: bytes, rows: Iterable[LinkSource]) -> list[tuple[int, int, bytes]]:
    """The (position, n, link) rows that continue a chain whose head is (n, prev)."""
    out = []
    for position, originator, version, topic, state in rows:
        n += 1
        prev = link_of(prev, position, originator, version, topic, state)
        out.append((position, n, prev))
    return out


def fingerprint(n: int, link: bytes) -> str:
    return f"{n}:{link.hex()}"


def parse_fingerprint(text: str) -> tuple[int, bytes]:
    """`N:HASH` → (N, link); ValueError when it is not one."""
    count, _, head = text.strip().partition(":")
    if not count.isdigit() or len(head) != 64:
        raise ValueError(text)
    return int(count), bytes.fromhex(head)


@dataclass
class Problem:
    """The first place where the log and its chain disagree."""

    kind: str  # changed, missing, unlinked, extra_links, truncated, fingerprint
    position: int  # the event's position (for missing: the first position after the gap)
    n: int  # the event's ordinal in the log (1-based)
    originator: str = ""
    version: int = 0
    topic: str = ""
    state: bytes = b""
    missing: int = 0  # for missing / extra_links / truncated: how many events


@dataclass
class Check:
    ok: bool
    checked: int
    head: str  # the recomputed fingerprint N:HASH of the whole log
    problem: Problem | None = None
    fingerprint_ok: bool | None = None  # None: no fingerprint given


def recompute(
    pages: Iterable[Sequence[ChainRow]],
    *,
    total: int,
    link_tail: tuple[int, int],
    expected: tuple[int, bytes] | None = None,
    progress: Callable[[int, int], None] | None = None,
    start: tuple[int, bytes] = (0, GENESIS),
) -> Check:
    """Walk the log with its stored links: recompute every link, compare it with the stored one
    and with an earlier fingerprint's head. `link_tail` is (max position, max n) of the stored
    links; `total` the number of events (for progress only); `start` the (n, link) the pages
    continue from. Stops at the first difference."""
    n, prev = start
    want_n, want = expected if expected else (-1, b"")
    problem: Problem | None = None
    fingerprint_ok: bool | None = None if expected is None else want_n == 0
    last_position = 0
    for rows in pages:
        for position, originator, version, topic, state, stored_n, stored in rows:
            n += 1
            prev = sha256(
                prev
                + f"{position}|{originator}|{version}|{topic}|{sha256(state).hexdigest()}".encode()
            ).digest()
            if n == want_n:
                fingerprint_ok = prev == want
            if stored != prev or stored_n != n:
                kind = "unlinked" if stored is None else "changed"
                missing = 0
                if stored_n is not None and stored_n > n:
                    kind, missing = "missing", stored_n - n
                problem = Problem(kind, position, n, originator, version, topic, state, missing)
                break
            last_position = position
        else:
            if progress is not None:
                progress(n, total)
            continue
        break
    if problem is None and link_tail[1] > n:
        problem = Problem("extra_links", last_position, n, missing=link_tail[1] - n)
    if problem is None and expected is not None and want_n > n:
        problem = Problem("truncated", last_position, n, missing=want_n - n)
        fingerprint_ok = False
    if problem is None and fingerprint_ok is False:
        problem = Problem("fingerprint", 0, want_n)
    return Check(problem is None, n, fingerprint(n, prev), problem, fingerprint_ok)
