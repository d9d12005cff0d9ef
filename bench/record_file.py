"""`landledger record --file` as a user runs it: parse, append, read model, in a child process.

    python bench/record_file.py [--cases 50000] [--backend sqlite|postgres|both] [--json OUT]

Writes the seeded demo campaign (service.demo: about 4.6 commands a case; 50,000 cases is a
city's 230,000 commands) as a JSON-lines file, then runs `landledger record --file` on a fresh
store (a new SQLite file; a new PostgreSQL database at 127.0.0.1:5432) and reports its wall time
CPU seconds (user + system) and peak resident memory (resource.getrusage(RUSAGE_CHILDREN), of
the child alone: each run is measured from a fresh helper process), and the peak of its
anonymous memory (sampled: the resident figure also counts the store's pages a rebuild maps).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.campaign import load_config
from service.demo import demo_commands

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# A helper process that runs the command and reports its peak memory alone (RUSAGE_CHILDREN
# of the helper covers only the command, not this script's own generated campaign). It also
# samples the anonymous memory of the command's processes (RssAnon, summed over the process
# and the helpers it starts) every 50 ms: the resident peak also counts the store's file
# pages that a rebuild maps in to read (clean page cache, given back under pressure).
MEASURE = """
import os, resource, subprocess, sys, tempfile, time

def anon(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            kb = next((int(l.split()[1]) for l in status if l.startswith("RssAnon")), 0)
        kids = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                kids += children.read().split()
    except (OSError, StopIteration):
        return 0
    return kb + sum(anon(kid) for kid in kids)

t = time.perf_counter()
with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    child = subprocess.Popen(sys.argv[1:], stdout=out, stderr=err, text=True)
    peak = 0
    while child.poll() is None:
        peak = max(peak, anon(child.pid))
        time.sleep(0.05)
    wall = time.perf_counter() - t
    out.seek(0)
    err.seek(0)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(child.returncode, wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, peak)
    print(out.read().strip(), err.read().strip()[-2000:], sep="\\n")
"""


def write_commands(path: Path, cases: int) -> int:
    commands = demo_commands(load_config(), cases)
    with open(path, "w", encoding="utf-8") as out:
        for command in commands:
            out.write(json.dumps(command, ensure_ascii=False, default=str) + "\n")
    return len(commands)


def record(db: str, path: Path) -> dict[str, object]:
    command = [sys.executable, "-m", "tui.cli", "--db", db, "--actor", "bench", "record"]
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command, "--file", str(path)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        capture_output=True,
        text=True,
        check=True,
    )
    head, *output = done.stdout.splitlines()
    code, seconds, kilobytes, cpu, anon = head.split()
    return {
        "exit": int(code),
        "wall_s": round(float(seconds), 2),
        "cpu_s": round(float(cpu), 2),  # steadier than wall time on a shared machine
        "peak_rss_mb": int(kilobytes) // 1024,
        "peak_anon_mb": int(anon) // 1024,  # sampled; the store's mapped pages left out
        "output": "\n".join(output).strip(),
    }


def on_sqlite(folder: Path, path: Path) -> dict[str, object]:
    return record(str(folder / "ledger.db"), path)


def on_postgres(path: Path) -> dict[str, object]:
    import psycopg

    name = f"landledger_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        return record(f"postgresql://postgres@127.0.0.1:5432/{name}", path)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    results: dict[str, object] = {"cases": args.cases}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        path = folder / "commands.jsonl"
        results["commands"] = write_commands(path, args.cases)
        results["file_mb"] = round(path.stat().st_size / 1e6, 1)
        if args.backend in ("sqlite", "both"):
            results["sqlite"] = on_sqlite(folder, path)
        if args.backend in ("postgres", "both"):
            results["postgres"] = on_postgres(path)
    text = json.dumps(results, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
