"""Offices recording at once on the same cases: commands/s and conflict retries per backend.

    python bench/concurrency.py [--processes 8] [--commands 1000] [--backend sqlite|postgres|both]

A store gets CASES filed cases; then each of `--processes` processes records `--commands`
commands on them, one command a `record` (through `Session.record`, what `landledger record` and
the dashboard's forms call), picking cases at random: mostly 整改记录 (fines paid, areas
demolished) and 处罚决定, then, in the last fifth, 整改完成 and 销号 (so two offices close out
the same case). A command the newer version of its case no longer allows (a second penalty
decision, a record on a closed case) is refused by its rule; any other refusal is a failure.
Each process writes what it did, a JSON line a command, and its conflict retries; the parent
reports commands/s over the parallel phase and the retries, then checks what tests/
test_concurrency.py checks in full: every accepted command in the log once, the sums exact.

`python bench/concurrency.py --worker DB K N OUT` is one such process (the test runs these).
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.commands import parse_command
from domain.errors import DomainError
from service.session import Session

CASES = 12
ON = "2022-03-01"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# The rules a command may meet once another office wrote first: nothing else is a valid refusal.
RULE_REFUSALS = ("已有处罚决定", "已销号", "尚未整改到位")


def ref(number: int) -> str:
    return f"CC-{number:03d}"


def setup_commands() -> list[dict[str, Any]]:
    """The shared cases, found and filed."""
    commands: list[dict[str, Any]] = []
    for n in range(1, CASES + 1):
        commands.append(
            {
                "cmd": "find_site",
                "ref": ref(n),
                "on": "2022-02-10",
                "source": "巡查",
                "township": "苏店镇",
                "unit": "苏店自然资源所",
                "violation_types": ["占用耕地"],
                "area_m2": "5000",
            }
        )
        commands.append({"cmd": "file_case", "ref": ref(n), "on": "2022-02-15", "case_no": ref(n)})
    return commands


def money(rng: random.Random, most: int) -> str:
    return str(Decimal(rng.randrange(1, most * 100)) / 100)


def worker_commands(worker: str, count: int) -> list[dict[str, Any]]:
    """A process's commands, each tagged (`tag`, stored in its note, decision number, basis or
    verifier) so the log can be matched against what was accepted."""
    rng = random.Random(worker)
    commands = []
    for i in range(count):
        tag = f"{worker}-{i}"
        case = ref(rng.randrange(1, CASES + 1))
        late = i >= count * 4 // 5
        pick = rng.random()
        if late and pick < 0.3:
            command = {"cmd": "complete_rectification", "verified_by": tag}
        elif late and pick < 0.6:
            command = {"cmd": "close_out", "basis": tag}
        elif not late and pick < 0.1:
            command = {
                "cmd": "decide_penalty",
                "decision_no": tag,
                "fine_yuan": money(rng, 50_000),
                "demolish_m2": money(rng, 500),
            }
        else:
            command = {
                "cmd": "record_rectification",
                "fine_paid_yuan": money(rng, 5_000),
                "demolished_m2": money(rng, 100),
                "note": tag,
            }
        commands.append({**command, "ref": case, "on": ON})
    return commands


def tag_of(command: dict[str, Any]) -> str:
    """A worker's command's tag; "" for any other command or event (the set-up's)."""
    for name in ("note", "decision_no", "basis", "verified_by"):
        if command.get(name):
            return str(command[name])
    return ""


def work(db: str, worker: str, count: int, out: str) -> None:
    """One office: each command recorded alone, what happened written as a JSON line."""
    session = Session(db, f"staff-{worker}")
    with open(out, "w", encoding="utf-8") as lines:
        for command in worker_commands(worker, count):
            try:
                session.record([parse_command(command)])
                refused = ""
            except DomainError as error:
                refused = error.message
            line = {"command": command, "refused": refused}
            lines.write(json.dumps(line, ensure_ascii=False) + "\n")
        lines.write(json.dumps({"retries": session.ledger.conflict_retries}) + "\n")
    session.close()


def start_workers(db: str, processes: int, count: int, folder: Path) -> list[Any]:
    """The offices, each a process of its own, started at once; (process, its output) pairs."""
    started = []
    for k in range(processes):
        out = folder / f"worker{k}.jsonl"
        argv = [sys.executable, __file__, "--worker", db, f"w{k}", str(count), str(out)]
        started.append((subprocess.Popen(argv), out))
    return started


def outcomes(started: list[Any]) -> tuple[list[dict[str, Any]], int]:
    """Wait for the offices; every command with its outcome, and the conflict retries."""
    results, retries = [], 0
    for process, out in started:
        if process.wait() != 0:
            raise SystemExit(f"worker failed: exit {process.returncode}")
        for line in Path(out).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if "retries" in row:
                retries += row["retries"]
            else:
                results.append(row)
    return results, retries


def accepted_sums(results: list[dict[str, Any]]) -> dict[str, Decimal]:
    """What the accepted commands add up to, as `stats --json` names it."""
    sums = dict.fromkeys(("fines_decided_yuan", "fines_paid_yuan", "demolished_m2"), Decimal(0))
    for row in results:
        command = row["command"]
        if row["refused"]:
            continue
        if command["cmd"] == "decide_penalty":
            sums["fines_decided_yuan"] += Decimal(command["fine_yuan"])
        elif command["cmd"] == "record_rectification":
            sums["fines_paid_yuan"] += Decimal(command["fine_paid_yuan"])
            sums["demolished_m2"] += Decimal(command["demolished_m2"])
    return sums


def new_store(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return str(folder / "offices.db")
    import psycopg

    schema = f"bench_concurrency_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{PG_ADMIN}?schema={schema}"


def drop_store(db: str) -> None:
    if db.startswith("postgresql://"):
        import psycopg

        schema = db.partition("schema=")[2]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def bench(backend: str, processes: int, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        db = new_store(backend, folder)
        try:
            session = Session(db, "setup")
            session.record([parse_command(c) for c in setup_commands()])
            started_at = time.perf_counter()
            results, retries = outcomes(start_workers(db, processes, count, folder))
            seconds = time.perf_counter() - started_at
            stats = session.stats()["total"]
            check = session.verify()
            tags = [t for e in session.ledger.all_events() if (t := tag_of(e.__dict__))]
            session.close()
        finally:
            drop_store(db)
    accepted = [tag_of(r["command"]) for r in results if not r["refused"]]
    odd = [r["refused"] for r in results if r["refused"] and not by_rule(r["refused"])]
    sums = accepted_sums(results)
    return {
        "backend": backend,
        "processes": processes,
        "commands": len(results),
        "accepted": len(accepted),
        "refused_by_rule": len(results) - len(accepted) - len(odd),
        "refused_otherwise": odd[:5],
        "seconds": round(seconds, 2),
        "commands_per_s": round(len(results) / seconds, 1),
        "conflict_retries": retries,
        "log_matches_accepted": sorted(tags) == sorted(accepted),
        "sums_match_stats": all(Decimal(stats[k]) == v for k, v in sums.items()),
        "verify_ok": check.ok,
    }


def by_rule(message: str) -> bool:
    return any(rule in message for rule in RULE_REFUSALS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--worker", nargs=4, metavar=("DB", "K", "N", "OUT"))
    args = parser.parse_args()
    if args.worker:
        db, worker, count, out = args.worker
        work(db, worker, int(count), out)
        return
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    for backend in backends:
        print(json.dumps(bench(backend, args.processes, args.commands), ensure_ascii=False))


if __name__ == "__main__":
    main()
