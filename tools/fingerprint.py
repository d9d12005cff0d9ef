"""Recompute a LandLedger fingerprint N:HASH from an events export alone (standard library only).

    python fingerprint.py events.jsonl [N:HASH]

Prints the fingerprint of the events in the file and whether it equals the file's first line's
(or the one given); exit 0 when it does. The hash chain is documented in LandLedger's README.
"""

import hashlib
import json
import sys


def fingerprint(lines: list[str]) -> str:
    link, n = bytes(32), 0
    for line in lines:
        event = json.loads(line)
        digest = event["state_sha256"]
        if "state" in event:  # an unmasked export: the readable fields must be the stored ones
            stored = json.loads(event["state"])
            shown = {**event["fields"], "on": event["on"], "actor": event["actor"]}
            if hashlib.sha256(event["state"].encode()).hexdigest() != digest or any(
                stored.get(key) != value for key, value in shown.items()
            ):
                raise SystemExit(f"position {event['position']}: differs from its stored state")
        aggregate = event["aggregate"].replace("-", "")
        entry = f"{event['position']}|{aggregate}|{event['version']}|{event['topic']}|{digest}"
        link, n = hashlib.sha256(link + entry.encode()).digest(), n + 1
    return f"{n}:{link.hex()}"


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as file:
        head, *events = file.read().splitlines()
    claimed = sys.argv[2] if len(sys.argv) > 2 else json.loads(head)["fingerprint"]
    found = fingerprint(events)
    print(found, "OK" if found == claimed else f"DIFFERS from {claimed}")
    sys.exit(0 if found == claimed else 1)
