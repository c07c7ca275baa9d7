"""The console-script entry point of `arcade`."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing for `--version`
if TYPE_CHECKING:
    from typing import NoReturn


def main() -> None:
    """Run `arcade`. A bare `--version` answers without loading the application."""
    if sys.argv[1:] == ["--version"]:
        from arcade_usage import installed_version

        print(installed_version("arcade-cli"))
        return
    from arcade_cli.app import app

    try:
        app(prog_name="arcade")
    except SystemExit as exc:
        _exit_now(exc.code)
    _exit_now(0)


def _exit_now(code: object) -> NoReturn:
    """Flush and end the process, skipping the interpreter's teardown.

    Tearing down Typer and everything it loaded takes about 11 ms of a 60 ms
    command, and overlaps the start of the detached sender just spawned; nothing
    of ours needs to run at exit.
    """
    import contextlib

    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        # A reader that went away (`arcade ... | head`) or a closed stream: nothing to do.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
