"""Running processes with Windows' `os` surface (`windows_site/sitecustomize.py`)."""

from __future__ import annotations

import os
from pathlib import Path

SITE = Path(__file__).resolve().parent / "windows_site"
LOG_ENV = "ARCADE_TEST_SURFACE_LOG"


def surface_env(log: Path | None = None) -> dict[str, str]:
    """Environment variables that give the processes started with them Windows' `os` surface.

    `log`: a file to which each such process appends its command line.
    """
    path = os.environ.get("PYTHONPATH")
    env = {"PYTHONPATH": os.pathsep.join([str(SITE), *([path] if path else [])])}
    if log is not None:
        env[LOG_ENV] = str(log)
    return env
