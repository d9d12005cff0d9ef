"""The 台账 screen at 200,000 cases: the ledger queries and the table widget, against the
same statements run by the database's own client.

    python bench/dashboard.py [--cases 200000] [--store FILE_OR_URL] [--repeat 7] [--json OUT]

The store is generated once (service.demo's commands, recorded through LandLedger.record in batches
of 20,000 commands, in a child process) and kept at --store (default
/tmp/landledger-dashboard-<cases>.db) for the next run; its read model is rebuilt when its
layout is not this code's. --store may be a postgresql://…?schema=NAME URL (an existing, empty
schema the first time).

For every query (no filter, each filter, each alert, search, each sort in both directions):
- count: projections.ledger_query.count;
- first: ledger_query.page(offset 0, 100 rows) as typed LedgerLines;
- end: the last 100 rows (what End shows);
each the median of --repeat runs, in ms; `raw_*` are the same SELECT statements (the same SQL
text and parameters, from count_sql / refs_sql / ROWS_SQL) run on a connection of the plain
client (sqlite3 or psycopg) with nothing else: the rows' bodies are fetched but not decoded.
Then the table widget in a headless `App.run_test(size=(120, 40))`: mount to the first rows
drawn, a filter, a header-click sort and End to their rows drawn; and the peak RSS of this
process (the generation runs in a child, so it is not counted). No test asserts any of these.
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.commands import parse_command
from projections import ledger_query as lq
from projections.alerts import CASE_ALERTS
from projections.ledger_query import LedgerPages, LedgerQuery
from projections.readmodel import ReadModel
from service.ledger import LandLedger

BATCH = 20_000
TODAY = date(2022, 4, 15)  # inside the demo campaign: every alert has cases


def generate(store: str, cases: int) -> None:
    """Record the demo campaign into a new store (in this process: run it in a child)."""
    from service.demo import demo_commands

    sqlite = not store.startswith("postgresql")
    target = f"{store}.part" if sqlite else store
    if sqlite:
        for suffix in ("", "-wal", "-shm"):
            Path(target + suffix).unlink(missing_ok=True)
    app = LandLedger(target)
    commands = demo_commands(app.campaign().config, cases)
    started = time.perf_counter()
    for i in range(0, len(commands), BATCH):
        app.record([parse_command(c) for c in commands[i : i + BATCH]], "bench")
    print(f"recorded {len(commands)} commands in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    model = ReadModel(app)
    model.rebuild()
    print(f"read model rebuilt in {time.perf_counter() - started:.1f} s")
    model.close()
    app.close()
    if sqlite:
        os.replace(target, store)


def empty(store: str) -> bool:
    """Whether the store has no cases yet (a SQLite file: whether it is there at all)."""
    if not store.startswith("postgresql"):
        return not Path(store).exists()
    app = LandLedger(store)
    try:
        return app.ledger_recorder.count_refs() == 0
    finally:
        app.close()


def prepare(store: str) -> float | None:
    """Bring the store's read model up to date (rebuilt if its layout changed): seconds."""
    app = LandLedger(store)
    model = ReadModel(app)
    try:
        if model.ledger_count() == 0:
            started = time.perf_counter()
            model.rebuild()
            return time.perf_counter() - started
        model.catch_up()
        return None
    finally:
        model.close()
        app.close()


CPU: list[float] = []  # the processor time of each median_ms call, for the table


def median_ms(action: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median wall time of `repeat` runs in ms (and their median processor time in CPU)."""
    times, cpu, result = [], [], None
    for _ in range(repeat):
        started, used = time.perf_counter(), time.process_time()
        result = action()
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
    CPU.append(round(statistics.median(cpu), 1))
    return round(statistics.median(times), 1), result


def queries() -> dict[str, LedgerQuery]:
    found: dict[str, LedgerQuery] = {
        "all": LedgerQuery(today=TODAY),
        "township": LedgerQuery(township="苏店镇", today=TODAY),
        "unit": LedgerQuery(unit="执法监察大队", today=TODAY),
        "state": LedgerQuery(state="整改中", today=TODAY),
        "violation_type": LedgerQuery(violation_type="侵占生态保护红线", today=TODAY),
    }
    for alert in CASE_ALERTS:
        found[f"alert {alert}"] = LedgerQuery(alert=alert, today=TODAY)
    found.update(
        {
            "search 2 chars (王建)": LedgerQuery(text="王建", today=TODAY),
            "search ref": LedgerQuery(text="sd-2022-012345", today=TODAY),
            "search no match": LedgerQuery(text="不存在", today=TODAY),
            "search common (苏店)": LedgerQuery(text="苏店", today=TODAY),
        }
    )
    for sort in lq.SORTS:
        for descending in (False, True):
            name = f"sort {sort} {'desc' if descending else 'asc'}"
            found[name] = LedgerQuery(sort=sort, descending=descending, today=TODAY)
    found["township + sort found_on desc"] = LedgerQuery(
        township="苏店镇", sort="found_on", descending=True, today=TODAY
    )
    found["crime + sort area desc"] = LedgerQuery(
        alert="crime", sort="area", descending=True, today=TODAY
    )
    found["search + unit + sort due_on"] = LedgerQuery(
        text="王", unit="苏店自然资源所", sort="due_on", today=TODAY
    )
    return found


class Raw:
    """The plain client on the same store: the same statements, nothing else."""

    def __init__(self, model: ReadModel, store: str) -> None:
        self.postgres = model.db.postgres
        if self.postgres:
            import psycopg

            env = model.app.env
            self.conn: Any = psycopg.connect(
                host=env.get("POSTGRES_HOST"),
                port=env.get("POSTGRES_PORT"),
                dbname=env.get("POSTGRES_DBNAME"),
                user=env.get("POSTGRES_USER"),
                password=env.get("POSTGRES_PASSWORD") or None,
                autocommit=True,
            )
            self.conn.execute(f'SET search_path TO "{env.get("POSTGRES_SCHEMA") or "public"}"')
        else:
            import sqlite3

            self.conn = sqlite3.connect(store)

    def rows(self, sql: str, params: list[Any]) -> list[Any]:
        if self.postgres:
            sql = sql.replace("?", "%s")
        return list(self.conn.execute(sql, params).fetchall())

    def page(self, sql: str, params: list[Any], backwards: bool = False) -> list[Any]:
        refs = [ref for (ref,) in self.rows(sql, params)]
        if backwards:
            refs.reverse()
        if not refs:
            return []
        return self.rows(lq.ROWS_SQL.format(marks=", ".join("?" * len(refs))), refs)


def measure_query(model: ReadModel, raw: Raw, query: LedgerQuery, repeat: int) -> dict[str, Any]:
    count_ms, n = median_ms(lambda: lq.count(model, query), repeat)
    count_cpu = CPU[-1]
    first_ms, rows = median_ms(lambda: lq.page(model, query, 0, 100, n), repeat)
    end = max(n - 100, 0)
    # What End shows: the table knows the count, so the page is read from the far end.
    end_ms, _ = median_ms(lambda: lq.page(model, query, end, 100, n), repeat)
    raw_count_ms, raw_n = median_ms(lambda: raw.rows(*lq.count_sql(model, query)), repeat)
    raw_first_ms, _ = median_ms(lambda: raw.page(*lq.refs_sql(model, query, 0, 100, n)), repeat)
    raw_end_ms, _ = median_ms(lambda: raw.page(*lq.refs_sql(model, query, end, 100, n)), repeat)
    assert raw_n[0][0] == n
    return {
        "rows": n,
        "count_ms": count_ms,
        "count_cpu_ms": count_cpu,
        "first_ms": first_ms,
        "end_ms": end_ms,
        "raw_count_ms": raw_count_ms,
        "raw_first_ms": raw_first_ms,
        "raw_end_ms": raw_end_ms,
        "first_ref": rows[0].ref if rows else "",
    }


def measure_queries(model: ReadModel, raw: Raw, repeat: int) -> list[dict[str, Any]]:
    figures = []
    print(f"  {'query':<32} {'rows':>7}  ms (raw client's ms) [count's processor ms]")
    for name, query in queries().items():
        f = {"query": name, **measure_query(model, raw, query, repeat)}
        figures.append(f)
        print(
            f"  {name:<32} {f['rows']:>7}  count {f['count_ms']:6.1f} ({f['raw_count_ms']:6.1f}) "
            f"[{f['count_cpu_ms']:6.1f}]  first {f['first_ms']:6.1f} ({f['raw_first_ms']:6.1f})  "
            f"end {f['end_ms']:6.1f} ({f['raw_end_ms']:6.1f})",
            flush=True,
        )
    return figures


async def measure_widget(store: str) -> dict[str, float]:
    """The table in a headless app: from mount, and from each action, to the first line drawn
    with the rows it asked for; and the longest the event loop went without running a 1 ms
    heartbeat meanwhile (what a user would feel as a freeze)."""
    from textual.app import App, ComposeResult
    from textual.strip import Strip

    from tui.ledger_table import LedgerTable

    marks: dict[str, float] = {}

    class Timed(LedgerTable):
        drawn_at = 0.0  # when a line showing a row was last drawn

        def on_mount(self) -> None:
            marks.setdefault("mount", time.perf_counter())

        def render_line(self, y: int) -> Strip:
            strip = super().render_line(y)
            if y >= 1 and self.row(int(self.scroll_y) + y - 1) is not None:
                self.drawn_at = time.perf_counter()
                marks.setdefault("painted", self.drawn_at)
            return strip

    app = LandLedger(store)
    model = ReadModel(app)

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield Timed(LedgerPages(model), LedgerQuery(today=TODAY))

    figures: dict[str, float] = {}
    stall = [0.0]

    async def heartbeat() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stall[0] = max(stall[0], now - last)
            last = now

    host = Host()
    started = time.perf_counter()
    async with host.run_test(size=(120, 40)) as pilot:
        beating = asyncio.create_task(heartbeat())
        while "painted" not in marks:
            if time.perf_counter() - started > 60:
                raise RuntimeError("the table showed no rows in 60 s")
            await asyncio.sleep(0.001)
        figures["widget_first_paint_from_mount_ms"] = (marks["painted"] - marks["mount"]) * 1000
        figures["widget_first_paint_from_run_test_ms"] = (marks["painted"] - started) * 1000
        table = host.query_one(Timed)

        async def until_drawn(action: Callable[[], Any], ready: Callable[[], bool]) -> float:
            """From the action to the first line drawn once `ready` holds."""
            begun = time.perf_counter()
            action()
            while not ready():
                if time.perf_counter() - begun > 60:
                    raise RuntimeError("the table did not show the rows in 60 s")
                await asyncio.sleep(0.001)
            # The draw that shows them: the next one, unless it came before `ready` was seen.
            at = time.perf_counter()
            while table.drawn_at < at and time.perf_counter() - at < 1:
                await asyncio.sleep(0.001)
            return (table.drawn_at - begun) * 1000

        def top(predicate: Callable[[Any], bool]) -> Callable[[], bool]:
            def ready() -> bool:
                line = table.row(int(table.scroll_y))
                return table.loaded and line is not None and predicate(line)

            return ready

        figures["widget_filter_ms"] = await until_drawn(
            lambda: table.set_query(LedgerQuery(township="北呈乡", today=TODAY)),
            top(lambda line: line.township == "北呈乡"),
        )
        figures["widget_search_ms"] = await until_drawn(
            lambda: table.set_query(LedgerQuery(text="王建", today=TODAY)),
            top(lambda line: "王建" in line.party_name),
        )
        figures["widget_all_again_ms"] = await until_drawn(
            lambda: table.set_query(LedgerQuery(today=TODAY)),
            top(lambda line: True),
        )
        figures["widget_sort_ms"] = await until_drawn(  # what a click on 占地（亩） does
            lambda: table.set_query(table.ledger_query.cycled("area")),
            top(lambda line: table.ledger_query.sort == "area"),
        )
        last = table.row_count - 1
        figures["widget_end_ms"] = await until_drawn(
            table.action_last, lambda: table.row(last) is not None and table.cursor_row == last
        )
        await pilot.pause()
        beating.cancel()
        figures["widget_longest_event_loop_stall_ms"] = stall[0] * 1000
    model.close()
    app.close()
    return {k: round(v, 1) for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--store", help="the generated store (kept for the next run)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    store = args.store or f"/tmp/landledger-dashboard-{args.cases}.db"
    if args.generate_only:
        generate(store, args.cases)
        return
    if empty(store):
        print(f"generating {args.cases} cases into {store} (kept for the next run)…", flush=True)
        child = [sys.executable, __file__, "--generate-only", "--cases", str(args.cases)]
        subprocess.run([*child, "--store", store], check=True)
    rebuild_s = prepare(store)
    if rebuild_s is not None:
        print(f"read model rebuilt (new layout) in {rebuild_s:.1f} s")
    app = LandLedger(store)
    model = ReadModel(app)
    cases = model.ledger_count()
    print(f"{cases} cases in {store}; ms, median of {args.repeat}; (raw client in brackets)")
    raw = Raw(model, store)
    figures: dict[str, Any] = {"cases": cases, "backend": "postgres" if raw.postgres else "sqlite"}
    # Other work on the machine inflates wall times (the raw client's alike), not processor time.
    figures["load_average_at_start"] = round(os.getloadavg()[0], 2)
    if rebuild_s is not None:
        figures["rebuild_s"] = round(rebuild_s, 1)
    figures["queries"] = measure_queries(model, raw, args.repeat)
    worst = max(max(f["count_ms"], f["first_ms"]) for f in figures["queries"])
    figures["worst_count_or_first_page_ms"] = worst
    model.close()
    app.close()
    widget = asyncio.run(measure_widget(store))
    figures.update(widget)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    figures["load_average_at_end"] = round(os.getloadavg()[0], 2)
    for key, value in figures.items():
        if key != "queries":
            print(f"{key:<40} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
