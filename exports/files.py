"""Where exports are written: a temporary file beside the target, renamed over it at the end."""

import os
import secrets
from pathlib import Path


def create_part(target: Path) -> tuple[int, str]:
    """Create a new temporary file beside `target`; returns its descriptor and path.

    Opened with mode 0666 so that the kernel applies the user's umask: the finished export has
    the permissions of any other file the user makes (mkstemp's 0600 kept colleagues on a shared
    server out). O_EXCL, and a random name, as mkstemp would."""
    tmp = target.parent / f".landledger-{secrets.token_hex(8)}{target.suffix}.part"
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(tmp)
