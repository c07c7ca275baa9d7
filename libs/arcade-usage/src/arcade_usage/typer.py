"""TrackedTyper: a drop-in `typer.Typer` that reports every command it runs.

This is the only module of arcade-usage that imports typer (install the
`arcade-usage[typer]` extra). It works with typer 0.16 (Arcade's CLI pins it; it
depends on click) up to the newest (from 0.26 typer carries its own click as the
private `typer._click`): it touches click only through what typer makes public.
The command's context reaches a wrapped callback the way typer hands it to any
callback, as a parameter annotated `typer.Context`.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import typer
from typer.models import CommandInfo

from arcade_usage._scrub import scrub
from arcade_usage._tracker import CommandTracker

__all__ = ["ClickException", "TrackedTyper"]

_SENSITIVE_WORDS = (
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "auth",
    "credential",
    "signature",
)
_INSTRUMENTED = "__arcade_usage_instrumented__"
_CONTEXT_PARAM = "arcade_usage_context"
"""The parameter a wrapped callback asks typer for the context by (unless it has its own)."""


def _click_exception() -> type[Exception]:
    """click's `ClickException`, from whichever click the installed typer uses.

    Found through the public `typer.BadParameter`, which derives from it in every
    typer: `click.ClickException` before 0.26, `typer._click`'s after.
    """
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == "ClickException":
            found: type[Exception] = cls
            return found
    raise ImportError("typer.BadParameter does not derive from a ClickException")


if TYPE_CHECKING:  # never imported at run time: typer before 0.26 has no `typer._click`
    from typer._click.exceptions import ClickException
else:
    ClickException = _click_exception()
    """The base of click's expected errors (`Error: ...`), for the installed typer."""


class _Run:
    """What one invocation did: which command ran, and the error the user saw."""

    def __init__(self, tracker: CommandTracker, opt_out_command: str | None = None) -> None:
        self.tracker = tracker
        self.opt_out_command = opt_out_command
        self.command_name: str | None = None
        self.error: str | None = None
        self.secrets: list[str] = []


class TrackedTyper(typer.Typer):
    """A `typer.Typer` whose commands, subcommands included, are each tracked once.

    `tracker` records the events (default: a `CommandTracker()`); `logout_command`
    names the dotted command that ends a login (its event still belongs to the
    account, which is then forgotten). A login needs no name: the first command
    that finds new credentials links them, whichever it is. `opt_out_command` names
    the one that turns tracking off (`usage.disable`): run first on a machine, it
    shows no notice and creates no identity (nothing is sent once it has run).
    Everything else is passed to `typer.Typer`. Eager options such as `--help` and
    `--version`, and shell completion, send nothing and create nothing; a usage
    error (exit 2: an unknown option, a missing argument) is a failure of the
    command it names, recorded by its kind alone, never with what was typed. The
    one-time notice is printed as a command starts, before its own output (after
    a usage error, which typer prints before the tool regains control).
    """

    def __init__(
        self,
        *,
        tracker: CommandTracker | None = None,
        logout_command: str | None = None,
        opt_out_command: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tracker = tracker if tracker is not None else CommandTracker()
        self.logout_command = logout_command
        self.opt_out_command = opt_out_command
        self._run: _Run | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._run = run = _Run(self.tracker, self.opt_out_command)
        _instrument(self, lambda: self._run)
        started = time.perf_counter()
        exit_code = 1
        try:
            result = super().__call__(*args, **kwargs)
            exit_code = 0
            return result
        except SystemExit as exc:
            exit_code, message = _exit_status(exc)
            usage = _usage_error(exc)
            if usage is not None and run.command_name is None:
                run.command_name, run.error = usage
            run.error = run.error or message
            raise
        finally:
            self._run = None
            if run.command_name is not None:
                self._report(run, exit_code, (time.perf_counter() - started) * 1000)

    def _report(self, run: _Run, exit_code: int, duration_ms: float) -> None:
        name = run.command_name or ""
        error = None
        if exit_code != 0:
            error = scrub(run.error or "", run.secrets) or f"exit code {exit_code}"
        self.tracker.track_command_execution(
            name,
            success=exit_code == 0,
            duration_ms=duration_ms,
            error_message=error,
            is_logout=name == self.logout_command,
        )


def _instrument(app: typer.Typer, current: Callable[[], _Run | None]) -> None:
    """Wrap every command callback of `app` and its sub-apps (once) to record into the run."""
    for info in app.registered_commands:
        _wrap(info, current)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _instrument(group.typer_instance, current)


def _wrap(info: CommandInfo, current: Callable[[], _Run | None]) -> None:
    callback = info.callback
    if callback is None or getattr(callback, _INSTRUMENTED, False):
        return
    own_context = _context_param(callback)
    context_param = own_context or _CONTEXT_PARAM

    @functools.wraps(callback)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs[context_param] if own_context else kwargs.pop(_CONTEXT_PARAM, None)
        run = current()
        if run is None or ctx is None:  # called outside TrackedTyper.__call__
            return callback(*args, **kwargs)
        names: list[str] = []
        while ctx.parent is not None:
            names.append(ctx.info_name or "")
            ctx = ctx.parent
        # A one-command app runs its command as the root, whose info_name is the program's.
        own_name = info.name or callback.__name__.lower().replace("_", "-")
        run.command_name = ".".join(reversed(names)) or own_name
        run.secrets = [
            v
            for k, v in kwargs.items()
            if isinstance(v, str) and any(w in k.lower() for w in _SENSITIVE_WORDS)
        ]
        try:
            if run.command_name != run.opt_out_command:
                run.tracker.show_notice()  # before anything the command prints
            return callback(*args, **kwargs)
        except typer.Exit:
            raise
        except ClickException as exc:
            run.error = exc.format_message()
            raise
        except (typer.Abort, EOFError):
            run.error = "Aborted!"  # what typer prints for both (Ctrl-D at a prompt)
            raise
        except KeyboardInterrupt:
            run.error = "Aborted."  # typer exits 130 in silence; `arcade` prints this
            raise
        except Exception as exc:
            run.error = f"{type(exc).__name__}: {exc}"
            raise

    if own_context is None:
        # Ask typer for the context as it is asked by any callback that wants it.
        # Annotations evaluated: typer before 0.17 reads a callback's `Annotated[...]`
        # options from the signature it is given, which is this one.
        try:
            signature = inspect.signature(callback, eval_str=True)
        except Exception:  # an annotation only typer's own resolution understands
            signature = inspect.signature(callback)
        params = list(signature.parameters.values())
        at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
        extra = inspect.Parameter(
            _CONTEXT_PARAM, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=typer.Context
        )
        tracked.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*params[:at], extra, *params[at:]]
        )
        tracked.__annotations__ = {**callback.__annotations__, _CONTEXT_PARAM: typer.Context}
    setattr(tracked, _INSTRUMENTED, True)
    info.callback = tracked


def _context_param(callback: Callable[..., Any]) -> str | None:
    """The name of the callback's own `typer.Context` parameter, if it has one."""
    import typing

    try:
        hints = typing.get_type_hints(callback)
    except Exception:  # an annotation typer would resolve its own way: ask by name
        hints = {}
    for name, hint in hints.items():
        if isinstance(hint, type) and issubclass(hint, typer.Context):
            return name
    return None


def _exit_status(exc: SystemExit) -> tuple[int, str | None]:
    if exc.code is None:
        return 0, None
    if isinstance(exc.code, int):
        return exc.code, None
    return 1, str(exc.code)


_USAGE_KINDS = {
    "NoSuchOption": "No such option.",
    "BadArgumentUsage": "Bad argument usage.",
}
_USAGE_PREFIXES = {  # click's wording varies (`argument (x)` in 8.1, `argument(s)` later)
    "No such command": "No such command.",
    "Missing command": "Missing command.",
    "Got unexpected extra argument": "Got unexpected extra argument(s).",
}


def _usage_error(exc: SystemExit) -> tuple[str, str] | None:
    """(command path, what went wrong) for a usage error typer showed before exiting 2.

    The text keeps what the command declares (`Missing option '--api-key'.`) and
    drops what the user typed (an unknown option could be a pasted secret).
    """
    error = exc.__context__  # typer shows the error, then exits while handling it
    if exc.code != 2 or not isinstance(error, ClickException) or error.exit_code != 2:
        return None
    kind = type(error).__name__
    if kind == "NoArgsIsHelpError":  # `tool group` alone shows help: asked for, not a failure
        return None
    ctx = getattr(error, "ctx", None) or _context_in(error.__traceback__)
    if ctx is None:
        return None
    names: list[str] = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    path = ".".join(reversed(names)) or ctx.command.name or ctx.info_name or ""
    if kind in _USAGE_KINDS:
        return path, _USAGE_KINDS[kind]
    if kind in ("MissingParameter", "BadOptionUsage"):  # name a declared option, no value
        return path, error.format_message()
    if kind == "BadParameter":
        hint = _param_hint(error)
        return path, f"Invalid value for {hint}." if hint else "Invalid value."
    message = error.format_message()
    for prefix, text in _USAGE_PREFIXES.items():
        if message.startswith(prefix):
            return path, text
    return path, "Usage error."


def _param_hint(error: ClickException) -> str | None:
    """How the error names the declared parameter (`'--timeout'`), without its value."""
    param = getattr(error, "param", None)
    ctx = getattr(error, "ctx", None)
    if param is None or ctx is None:
        return None
    return str(param.get_error_hint(ctx))


def _context_in(tb: TracebackType | None) -> Any:
    """The innermost click context on the way the error came: click's parser raises
    some usage errors (`Option '--x' requires an argument.`) without their context."""
    found = None
    while tb is not None:
        ctx = tb.tb_frame.f_locals.get("ctx")
        if hasattr(ctx, "info_name") and hasattr(ctx, "parent"):
            found = ctx
        tb = tb.tb_next
    return found
