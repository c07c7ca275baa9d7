"""Whether usage tracking is on, and why.

Off wins: an environment opt-out, `DO_NOT_TRACK`, or the persisted choice of
`usage disable`. The persisted choice is a file of its own (not a key in
`usage.json`), so a lost or regenerated identity can never turn tracking back on.
"""

from __future__ import annotations

import os
from pathlib import Path

from arcade_identity import arcade_dir, write_atomic
from arcade_usage._settings import (
    DISABLED_FILE,
    DO_NOT_TRACK_ENV,
    OFF_WORDS,
    SENDER_ENV,
    TRACKING_ENV,
)

_DISABLED_NOTE = b"""\
Arcade usage tracking is disabled on this machine.
Run `arcade usage enable` (or delete this file) to turn it back on.
"""


def disabled_file(work_dir: str | os.PathLike[str] | None = None) -> Path:
    return arcade_dir(work_dir) / DISABLED_FILE


def tracking_state(work_dir: str | os.PathLike[str] | None = None) -> tuple[bool, str]:
    """(enabled, the reason in a few words)."""
    if os.environ.get(SENDER_ENV):
        return False, "inside the usage sender"
    value = os.environ.get(TRACKING_ENV)
    if value is not None and value.strip().lower() in OFF_WORDS:
        return False, f"{TRACKING_ENV}={value.strip()} is set"
    dnt = os.environ.get(DO_NOT_TRACK_ENV, "").strip()
    if dnt and dnt.lower() not in OFF_WORDS:
        return False, f"{DO_NOT_TRACK_ENV}={dnt} is set"
    try:
        # lstat: a link that leads nowhere (a dotfile on an unmounted drive) still says "off".
        os.lstat(disabled_file(work_dir))
    except FileNotFoundError:
        return True, "the default"
    except OSError:
        return False, f"{disabled_file(work_dir)} cannot be read"
    return False, "disabled with `arcade usage disable`"


def is_tracking_enabled(work_dir: str | os.PathLike[str] | None = None) -> bool:
    """True unless the user opted out in any of the supported ways."""
    return tracking_state(work_dir)[0]


def disable_tracking(work_dir: str | os.PathLike[str] | None = None) -> Path:
    """Persist the opt-out; returns the file that holds it."""
    path = disabled_file(work_dir)
    write_atomic(path, _DISABLED_NOTE, mode=0o644)
    return path


def enable_tracking(work_dir: str | os.PathLike[str] | None = None) -> bool:
    """Remove the persisted opt-out; True when there was one."""
    try:
        disabled_file(work_dir).unlink()
    except FileNotFoundError:
        return False
    return True
