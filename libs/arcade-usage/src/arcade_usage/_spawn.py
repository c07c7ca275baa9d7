"""Starting the detached sender so that the command never waits for it."""

from __future__ import annotations

import _thread
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from arcade_usage._settings import EVENT_ENV, SENDER_ENV

# Windows: no console window, not tied to the parent's console or Ctrl+C.
_WINDOWS_FLAGS = 0x00000008 | 0x00000200 | 0x08000000  # DETACHED, NEW_PROCESS_GROUP, NO_WINDOW


def spawn_sender(message: dict[str, Any], *, cwd: Path, env: dict[str, str]) -> None:
    """Start `python -m arcade_usage` in its own session with `message` in its environment.

    stdio goes to the null device and no descriptor is inherited, so a pipe the
    user reads from (`arcade ... | head`) closes when the command does. The working
    directory is `cwd` (the `.arcade` directory), never the user's project, which
    `-m` would otherwise put first on the sender's import path. The user's Python
    configuration stays out too: no user site-packages or usercustomize (`-s`,
    unless arcade-usage itself is installed there), no PYTHONSTARTUP or
    PYTHONINSPECT, and warnings are ignored rather than turned into errors.

    A background thread waits for the child: a long-lived caller collects no zombies, and
    the Popen object is never garbage-collected while the sender runs, which would
    raise "subprocess is still running" as a ResourceWarning (an error under
    `-X dev` or a test suite's `filterwarnings = error`). The thread never delays exit.
    """
    if not sys.executable:
        return
    child_env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONSTARTUP", "PYTHONINSPECT")},
        **env,
        "PYTHONWARNINGS": "ignore",
        EVENT_ENV: json.dumps(message),
        SENDER_ENV: "1",
    }
    options: dict[str, Any] = {}
    if os.name == "nt":
        options["creationflags"] = _WINDOWS_FLAGS
    else:
        options["start_new_session"] = True
    process = subprocess.Popen(
        [sys.executable, *_isolation_flags(), "-m", "arcade_usage"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        cwd=cwd,
        env=child_env,
        **options,
    )
    # A bare thread: threading.Thread.start() would block until the new thread has
    # been scheduled, milliseconds on a busy machine.
    _thread.start_new_thread(process.wait, ())


def _isolation_flags() -> list[str]:
    """`-s` (no user site-packages), unless that is where this package was installed."""
    import site

    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else ""
    here = os.path.abspath(__file__)
    if user_site and here.startswith(os.path.join(os.path.abspath(user_site), "")):
        return []
    return ["-s"]
