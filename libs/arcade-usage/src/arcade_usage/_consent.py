"""Whether usage tracking is on and why, and the one-time notice that says so.

Off wins: an environment opt-out, `DO_NOT_TRACK`, or the persisted choice of
`usage disable`. The persisted choice is a file of its own (not a key in
`usage.json`), so a lost or regenerated identity can never turn tracking back on,
and a file that exists but cannot be read keeps tracking off. With no home
directory (and no `ARCADE_WORK_DIR`) there is nowhere to keep an identity:
tracking is off, quietly.

The decision needs `os` alone, so the detached sender checks it again before it
uploads anything, at the cost of an `lstat`.
"""

from __future__ import annotations

import os
import sys

from arcade_usage._env import DO_NOT_TRACK_ENV, OFF_WORDS, TRACKING_ENV

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pathlib import Path

NOTICE_PARAGRAPHS = (
    "Arcade tools collect usage data to improve them: the name of the command or tool,"
    " whether it succeeded, how long it took, the error if any, and the versions of the"
    " tool, Python and your OS. Never your API key, files or arguments. Events are linked"
    " to your Arcade account while you are logged in, and anonymous otherwise.",
    "Opt out with ARCADE_USAGE_TRACKING=0 (or DO_NOT_TRACK=1), or run `arcade usage disable`.",
)
"""The one-time notice, a paragraph a string: wrapped to the terminal when printed."""
DEFAULT_COLUMNS = 80
"""The width the notice is wrapped to when stderr is not a terminal and COLUMNS is unset."""
MAX_COLUMNS = 100
"""Wider lines are hard to read: a wide terminal still gets the notice in this measure."""

_DISABLED_NOTE = b"""\
Arcade usage tracking is disabled on this machine.
Run `arcade usage enable` (or delete this file) to turn it back on.
"""


def env_opt_out() -> str | None:
    """The reason tracking is off by environment, or None when the environment allows it."""
    value = os.environ.get(TRACKING_ENV)
    if value is not None and value.strip().lower() in OFF_WORDS:
        return f"{TRACKING_ENV}={value.strip()} is set"
    dnt = os.environ.get(DO_NOT_TRACK_ENV, "").strip()
    if dnt and dnt.lower() not in OFF_WORDS:
        return f"{DO_NOT_TRACK_ENV}={dnt} is set"
    return None


def state_in(directory: str | os.PathLike[str]) -> tuple[bool, str]:
    """(enabled, why) for the `.arcade` directory `directory`."""
    reason = env_opt_out()
    if reason is not None:
        return False, reason
    from arcade_identity import DISABLED_FILE

    path = os.path.join(directory, DISABLED_FILE)
    try:
        # lstat: a link that leads nowhere (a dotfile on an unmounted drive) still says "off".
        os.lstat(path)
    except FileNotFoundError:
        return True, "the default"
    except OSError:
        return False, f"{path} cannot be read"
    return False, "disabled with `arcade usage disable`"


def tracking_state(work_dir: str | os.PathLike[str] | None = None) -> tuple[bool, str]:
    """(enabled, the reason in a few words)."""
    reason = env_opt_out()
    if reason is not None:
        return False, reason
    directory = _arcade_dir(work_dir)
    if directory is None:
        return False, "no home directory to keep an identity in"
    return state_in(directory)


def is_tracking_enabled(work_dir: str | os.PathLike[str] | None = None) -> bool:
    """True unless the user opted out in any of the supported ways."""
    return tracking_state(work_dir)[0]


def disable_tracking(work_dir: str | os.PathLike[str] | None = None) -> Path:
    """Persist the opt-out and drop what waits to be sent; returns the file that holds it.

    Nothing recorded before `disable` is sent after it, not even after a later `enable`.
    """
    from arcade_identity import DISABLED_FILE, arcade_dir, write_atomic
    from arcade_usage._outbox import Outbox

    path = arcade_dir(work_dir) / DISABLED_FILE
    write_atomic(path, _DISABLED_NOTE, mode=0o644)
    Outbox(work_dir).clear()
    return path


def enable_tracking(work_dir: str | os.PathLike[str] | None = None) -> bool:
    """Remove the persisted opt-out; True when there was one."""
    from arcade_identity import DISABLED_FILE, arcade_dir
    from arcade_usage._outbox import Outbox

    try:
        (arcade_dir(work_dir) / DISABLED_FILE).unlink()
    except FileNotFoundError:
        return False
    # Anything a sender filed while `disable` ran was recorded before it: not sent after.
    Outbox(work_dir).clear()
    return True


def print_notice() -> None:
    """Write the notice to stderr, so that nothing is added to a command's output."""
    try:
        sys.stderr.write(notice_text(_stderr_columns()))
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # no usable stderr (closed, detached): the notice is not worth an error


def notice_text(columns: int = DEFAULT_COLUMNS) -> str:
    """The notice, each paragraph wrapped to `columns` (at most MAX_COLUMNS), words kept whole."""
    import textwrap

    width = max(20, min(columns, MAX_COLUMNS))
    lines = []
    for paragraph in NOTICE_PARAGRAPHS:
        # A `command` stays on one line: its spaces become no-break ones while wrapping.
        parts = paragraph.split("`")
        parts[1::2] = [part.replace(" ", "\u00a0") for part in parts[1::2]]
        wrapped = textwrap.fill(
            "`".join(parts), width, break_long_words=False, break_on_hyphens=False
        )
        lines.append(wrapped.replace("\u00a0", " ") + "\n")
    return "".join(lines)


def _stderr_columns() -> int:
    """The terminal's width as `shutil.get_terminal_size` finds it, asked of stderr.

    `shutil` asks stdout, which is often a pipe (`arcade ... | less`) while the notice
    goes to a terminal on stderr.
    """
    try:
        columns = int(os.environ.get("COLUMNS", ""))
        if columns > 0:
            return columns
    except ValueError:
        pass
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns or DEFAULT_COLUMNS
    except (AttributeError, ValueError, OSError):  # not a terminal, or no real file behind it
        return DEFAULT_COLUMNS


def _arcade_dir(work_dir: str | os.PathLike[str] | None) -> Path | None:
    from arcade_identity import arcade_dir

    try:
        return arcade_dir(work_dir)
    except (OSError, RuntimeError, KeyError):  # no home directory to be found
        return None
