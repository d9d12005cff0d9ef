"""The hash chain over the event log: one link per stored event, in notification order.

    digest_n = SHA-256(state_n)                         the event's stored bytes, as stored
    entry_n  = "{position}|{originator id, 32 hex}|{version}|{topic}|{digest_n, 64 hex}"
    link_n   = SHA-256(link_{n-1} ‖ entry_n as UTF-8)   link_0 = 32 zero bytes

The state is the event's JSON exactly as stored (ciphertext when the store is encrypted); it
holds every field of the event, its recorded time and its actor. The fingerprint of a store is
`N:HASH`: the number of events and the hex of the N-th link.

The links live in the table `chain_links` beside the log, one row per written batch: the
position of its first event (`first`), the ordinal of that event (`n`), the positions of its
events (`positions`, 8-byte integers) and their links (`links`, 32 bytes each). One row per batch
rather than per event: inserting a row per event cost the append path as much as computing the
links. The recorders' inserts write the row in the same transaction as the events, after the
events took the log's write lock (SQLite's one writer; PostgreSQL's `LOCK TABLE … EXCLUSIVE`):
the previous link is read under that lock, so two writers can never fork or skip the chain.
Events written before the chain existed are linked once, by the first insert or `verify` that
finds them, and the table `chain_meta` records when ("linked on <date>").

Everything here is plain computation; the SQL lives in the recorders (storage/sqlite.py,
storage/postgres.py).
"""

from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256

GENESIS = bytes(32)

# The columns of a log row a link is computed from: position, originator id (hex), version,
# topic, state.
LinkSource = tuple[int, str, int, str, bytes]
# A stored batch of links: first position, ordinal of its first event, positions, links.
LinkRow = tuple[int, int, bytes, bytes]


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


def entries(events: Iterable[tuple[str, int, str, bytes]]) -> Iterator[bytes]:
    """Each event's entry after its position, as UTF-8: `|originator|version|topic|digest`
    from (originator id hex, version, topic, state), computed as it is drawn."""
    return (f"|{o}|{v}|{t}|{sha256(state).hexdigest()}".encode() for o, v, t, state in events)


def links(prev: bytes, positions: Iterable[int], entries: Iterable[bytes]) -> Iterator[bytes]:
    """The links that follow `prev` for events at these positions with these entries, each
    computed as it is drawn: a writer draws them beside the rows it sends."""
    for position, entry in zip(positions, entries, strict=True):
        prev = sha256(b"%s%d%s" % (prev, position, entry)).digest()
        yield prev


def link_row(n: int, positions: Sequence[int], links: Iterable[bytes]) -> LinkRow:
    """The stored row of these links, the first of them the chain's (n + 1)-th."""
    return positions[0], n + 1, array("q", positions).tobytes(), b"".join(links)


def extend(n: int, prev: bytes, rows: Sequence[LinkSource]) -> LinkRow:
    """The stored row of links that continues a chain whose head is (n, prev) with these
    events."""
    positions = [row[0] for row in rows]
    return link_row(n, positions, links(prev, positions, entries(row[1:] for row in rows)))


def head_of(row: LinkRow) -> tuple[int, int, bytes]:
    """(position, n, link) of a stored row's last event."""
    _, n, positions, links = row
    last = array("q", positions[-8:])[0]
    return last, n + len(links) // 32 - 1, links[-32:]


def unpacked(row: LinkRow) -> Iterator[tuple[int, int, bytes]]:
    """A stored row's (position, n, link) triples."""
    _, n, positions, links = row
    for i, position in enumerate(array("q", positions)):
        yield position, n + i, links[32 * i : 32 * i + 32]


def link_at(row: LinkRow, position: int) -> tuple[int, bytes] | None:
    """The stored (n, link) of a position within a stored row."""
    _, n, positions, links = row
    try:
        i = array("q", positions).index(position)
    except ValueError:
        return None
    return n + i, links[32 * i : 32 * i + 32]


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
    pages: Iterable[Sequence[LinkSource]],
    stored: Iterator[tuple[int, int, bytes]],
    *,
    total: int,
    expected: tuple[int, bytes] | None = None,
    progress: Callable[[int, int], None] | None = None,
    start: tuple[int, bytes] = (0, GENESIS),
) -> Check:
    """Walk the log beside its stored links (`stored`: (position, n, link) in order): recompute
    every link, compare it with the stored one and with an earlier fingerprint's head. `total`
    is the number of events (for progress only); `start` the (n, link) the pages continue
    from. Stops at the first difference."""
    n, prev = start
    want_n, want = expected if expected else (-1, b"")
    problem: Problem | None = None
    fingerprint_ok: bool | None = None if expected is None else want_n == 0
    last_position = 0
    end = (1 << 63, 0, b"")
    link_position, link_n, link = next(stored, end)
    for rows in pages:
        for position, originator, version, topic, state in rows:
            n += 1
            prev = sha256(
                prev
                + f"{position}|{originator}|{version}|{topic}|{sha256(state).hexdigest()}".encode()
            ).digest()
            if n == want_n:
                fingerprint_ok = prev == want
            if link_position != position or link_n != n or link != prev:
                problem = Problem("changed", position, n, originator, version, topic, state)
                if link_position < position:  # links of events no longer there
                    while link_position < position:
                        problem.missing += 1
                        link_position, link_n, link = next(stored, end)
                    problem.kind = "missing"
                elif link_position > position:
                    problem.kind = "unlinked"
                break
            link_position, link_n, link = next(stored, end)
        else:
            if rows:
                last_position = rows[-1][0]
            if progress is not None:
                progress(n, total)
            continue
        break
    if problem is None and link_position != end[0]:
        extra = 1 + sum(1 for _ in stored)
        problem = Problem("extra_links", last_position, n, missing=extra)
    if problem is None and expected is not None and want_n > n:
        problem = Problem("truncated", last_position, n, missing=want_n - n)
        fingerprint_ok = False
    if problem is None and fingerprint_ok is False:
        problem = Problem("fingerprint", 0, want_n)
    return Check(problem is None, n, fingerprint(n, prev), problem, fingerprint_ok)
