"""Windows' `os` surface in a process started on Linux or macOS, for the smoke tests.

Python imports `sitecustomize` at start-up from the first directory on its path
that holds one: with this directory first on PYTHONPATH (see
`windows_surface.surface_env`), every Python process of a test, and every one
those start with the same environment (`python -s` keeps PYTHONPATH; only `-I`
or `-E` drop it), loses the names of `os` that Windows does not have and cannot
import the modules Windows does not have. Then it runs the `sitecustomize` it
hides, if there is one.

It makes no process Windows: `sys.platform`, paths and signals stay as they are,
so code that asks the platform by name takes its own branch. It catches code
that takes a Unix-only name for granted, which is what crashes on Windows.
When `ARCADE_TEST_SURFACE_LOG` names a file, each process appends its command
line to it, so that a test can tell the surface reached the processes it meant.
"""

from __future__ import annotations

import os
import sys

# Unix-only in Python's documentation and absent from Windows' `os` (fchmod came
# to Windows in 3.13; the promise is for 3.10 on). Names the standard library
# itself binds at import time on Linux (os.WNOHANG in subprocess) are kept:
# removing them would break Linux's own code paths, not show a Windows one.
REMOVED_NAMES = (
    "O_NONBLOCK",
    "O_NOFOLLOW",
    "O_CLOEXEC",
    "O_DIRECTORY",
    "O_NOCTTY",
    "O_SYNC",
    "O_DSYNC",
    "O_NDELAY",
    "O_ASYNC",
    "pread",
    "pwrite",
    "preadv",
    "pwritev",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "getpgid",
    "getsid",
    "setsid",
    "killpg",
    "fork",
    "fchmod",
    "fchown",
    "chown",
    "lchown",
    "lchmod",
    "mkfifo",
    "mknod",
    "nice",
    "sync",
    "fdatasync",
    "statvfs",
    "fstatvfs",
    "getloadavg",
    "sched_getaffinity",
    "posix_fadvise",
    "posix_fallocate",
)

BLOCKED_MODULES = frozenset({"fcntl", "pwd", "grp", "resource", "termios", "pty", "tty"})


class _Unix:
    """A meta path finder that finds Windows' missing modules missing."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name in BLOCKED_MODULES:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def _apply() -> None:
    for name in REMOVED_NAMES:
        if hasattr(os, name):
            delattr(os, name)
    for name in BLOCKED_MODULES:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, _Unix())
    # filelock, finding neither fcntl nor (not being on Windows) msvcrt, falls back to its
    # soft lock and says so; on Windows it takes msvcrt's lock and says nothing.
    import warnings

    warnings.filterwarnings("ignore", message="only soft file lock is available")
    log = os.environ.get("ARCADE_TEST_SURFACE_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as file:
            file.write(repr(getattr(sys, "orig_argv", sys.argv)) + "\n")


def _run_the_hidden_one() -> None:
    """The `sitecustomize` further down the path (a distribution's, a venv's), if any."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_apply()
_run_the_hidden_one()
