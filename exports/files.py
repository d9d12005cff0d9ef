"""Where exports are written: a temporary file beside the target, renamed over it at the end."""

import os
import secrets
import time
from pathlib import Path

# A part not written to for this long was left by an export that was killed: a running one
# writes to its part every few milliseconds.
STALE_PART_SECONDS = 600


def create_part(target: Path) -> tuple[int, str]:
    """Create a new temporary file beside `target`; returns its descriptor and path.

    Opened with mode 0666 so that the kernel applies the user's umask: the finished export has
    the permissions of any other file the user makes (mkstemp's 0600 kept colleagues on a shared
    server out). O_EXCL, and a random name, as mkstemp would. Parts left in that folder by
    killed exports are removed first."""
    _sweep_parts(target.parent)
    tmp = target.parent / f".landledger-{secrets.token_hex(8)}{target.suffix}.part"
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(tmp)


def _sweep_parts(folder: Path) -> None:
    now = time.time()
    for part in folder.glob(".landledger-*.part"):
        try:
            if now - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()
        except OSError:  # gone already, or not ours to remove: the export goes on
            continue
