"""What it costs a batch to move a case state out of memory and back (service.states).

    python bench/case_states.py [--cases 2000]

Records the seeded campaign (service.demo) into a new SQLite file, then times, per state, the
compact encoding and decoding of the batch's states and of the same states read back from the
store (their times in pydantic's own UTC), against pickle's round trip: best of 5, µs.
"""

import argparse
import gc
import json
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.campaign import load_config
from domain.commands import parse_command
from service.demo import demo_commands
from service.ledger import LandLedger
from service.states import decoded, encoded


def per_item(function: Callable[[Any], Any], items: Sequence[Any]) -> float:
    """µs per item, best of 5."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for item in items:
            function(item)
        best = min(best, time.perf_counter() - start)
    return round(best / len(items) * 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    args = parser.parse_args()
    gc.disable()  # as the landledger command runs
    commands = demo_commands(load_config(), args.cases)
    parsed = [parse_command(json.loads(json.dumps(c, default=str))) for c in commands]
    with tempfile.TemporaryDirectory() as scratch:
        app = LandLedger(str(Path(scratch) / "ledger.db"))
        app.record(parsed, "bench")
        recorded = list(app._cases.values())
        stored = [app.load_case(case.id) for case in recorded]
        app.close()
    results: dict[str, object] = {"cases": len(recorded)}
    for name, states in (("recorded", recorded), ("read from the store", stored)):
        assert all(decoded(encoded(case)) == case for case in states)
        data = [encoded(case) for case in states]
        pickled = [pickle.dumps(case, protocol=pickle.HIGHEST_PROTOCOL) for case in states]
        results[name] = {
            "encode_us": per_item(encoded, states),
            "decode_us": per_item(decoded, data),
            "bytes": round(sum(map(len, data)) / len(data)),
            "pickle_dump_us": per_item(pickle.dumps, states),
            "pickle_load_us": per_item(pickle.loads, pickled),
        }
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
