"""The console-script entry point of `arcade`: the edge where every failure becomes one line.

Whatever happens below (a bug included), the user sees at most one line about
it on stderr and a non-zero exit code, never a traceback: a closed stdout, a
closed stderr, Ctrl-C at any moment (exit 130), a full or read-only disk. A
reader that went away (`arcade ... | head -1`) is no error at all: the command
ends quietly with the status of a process killed by SIGPIPE (141), as Unix tools
do, since Python ignores SIGPIPE and would otherwise report it as BrokenPipeError.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing for `--version`
if TYPE_CHECKING:
    from types import FrameType
    from typing import NoReturn, TextIO

INTERRUPTED = 130
"""The exit code of a command stopped by Ctrl-C, as shells report a SIGINT death."""
PIPE_CLOSED = 141
"""The exit code of a command whose reader went away, as shells report a SIGPIPE death."""

DISTRIBUTION = "arcade-dev-cli"
"""The name arcade is installed under (PyPI's `arcade-cli` is another project)."""


def main() -> None:
    """Run `arcade` and end the process with its exit code."""
    code: object = 1
    try:
        code = _run(sys.argv[1:])
    except KeyboardInterrupt:
        code = INTERRUPTED
    _exit_now(code)


def _run(args: list[str]) -> object:
    """The command's exit code (an int, None for 0, or a message for 1), as `SystemExit` has it."""
    closed_stdout = sys.stdout is None
    _guard_closed_fds()
    if closed_stdout:  # `arcade ... >&-`: any output would be lost, so do nothing
        _say("Error: standard output is closed; nothing was done.")
        return 1
    stdout = sys.stdout
    code: object = 0
    try:
        if args == ["--version"]:  # answered without loading the application
            from arcade_usage import installed_version

            print(installed_version(DISTRIBUTION))
            return 0
        _arm_interrupt()
        from arcade_cli.app import app

        app(prog_name="arcade")
    except SystemExit as exc:
        code = exc.code
    except BrokenPipeError:
        return _broken_pipe()
    except OSError as exc:  # from a command, past Typer: a file or stream in the way
        from arcade_cli.exceptions import describe_os_error

        _say(f"Error: {describe_os_error(exc)}")
        return 1
    except Exception as exc:  # a bug of ours or a broken install; still one line
        _say(f"Error: unexpected {type(exc).__name__}: {exc}")
        return 1
    if sys.stdout is not stdout:
        # Typer swaps in a quiet stdout when a write fails with EPIPE: the reader went away.
        return _broken_pipe()
    return code


def _broken_pipe() -> int:
    """The reader of stdout went away: say nothing (it would not be read either) and
    let nothing still buffered fail again on the way out."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass
    return PIPE_CLOSED


def _guard_closed_fds() -> None:
    """Put /dev/null on a closed fd 1 or 2, and a closed stderr's writes into it.

    Without this, a lock or identity file opened later could become fd 2 and
    receive what a library writes to "stderr", and Typer would print its error
    messages on stdout for want of a stderr.
    """
    for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
        if stream is not None:
            continue
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (lives as long as we do)


def _arm_interrupt() -> None:
    """The first Ctrl-C raises KeyboardInterrupt, so the command and its tracker wind down
    (an event already decided on is still queued); a second one ends the process at once."""
    import signal

    def first(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, _end_at_once)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, first)


def _end_at_once(signum: int, frame: FrameType | None) -> None:
    import contextlib

    with contextlib.suppress(OSError):
        os.write(2, b"Aborted.\n")
    os._exit(INTERRUPTED)


def _say(line: str) -> None:
    """Write one line on stderr if there is a stderr to write to."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def _flush(stream: TextIO | None) -> Exception | None:
    """Flush a standard stream; why what was written could not be delivered, if it could not."""
    try:
        if stream is not None:
            stream.flush()
    except (OSError, ValueError) as exc:  # ValueError: closed
        return exc
    return None


def _exit_now(code: object) -> NoReturn:
    """Flush and end the process, skipping the interpreter's teardown.

    Tearing down Typer and everything it loaded takes about 11 ms of a 60 ms
    command, and overlaps the start of the detached sender just spawned; nothing
    of ours needs to run at exit.
    """
    try:
        if code is None:
            code = 0
        elif isinstance(code, str):
            _say(code)
            code = 1
        elif not isinstance(code, int):
            code = 1
        if code == INTERRUPTED:
            _say("Aborted.")
        problem = _flush(sys.stdout)
        if isinstance(problem, BrokenPipeError):
            code = _broken_pipe() if code == 0 else code
        elif problem is not None and code == 0:
            reason = problem.strerror if isinstance(problem, OSError) else None
            _say(f"Error: the output could not be written: {reason or problem}")
            code = 1
        _flush(sys.stderr)
    except KeyboardInterrupt:
        code = INTERRUPTED
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    main()
