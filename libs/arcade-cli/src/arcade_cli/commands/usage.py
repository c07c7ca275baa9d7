"""`arcade usage status|log|enable|disable`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from arcade_cli._tracking import tracker
from arcade_cli.exceptions import ArcadeCliError, describe_os_error
from arcade_identity import IdentityUnavailableError
from arcade_usage import (
    Outbox,
    disable_tracking,
    enable_tracking,
    tracking_state,
    usage_log,
    valid_text,
)

app = typer.Typer(help="See and control the usage data arcade sends.", no_args_is_help=True)


@app.command()
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object, for scripts.")
    ] = False,
) -> None:
    """Show whether tracking is on, who events are sent as, and what waits to be sent."""
    report = _status()
    if as_json:
        import json

        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    identity_file = report["identity_file"] or "none"
    if report["identity_problem"]:
        identity_file += f" (unusable: {report['identity_problem']})"
    if report["outbox_error"]:
        outbox = f"cannot see what waits in {report['outbox_dir']} ({report['outbox_error']})"
    else:
        outbox = f"{report['outbox_waiting']} event(s) waiting"
        if report["outbox_dir"]:
            outbox += f" in {report['outbox_dir']}"
    typer.echo(f"Tracking:         {'on' if report['tracking'] else 'off'} ({report['reason']})")
    typer.echo(f"Anonymous id:     {report['anon_id'] or 'none yet'}")
    typer.echo(f"Linked principal: {report['linked_principal_id'] or 'none'}")
    typer.echo(f"Identity file:    {identity_file}")
    typer.echo(f"Outbox:           {outbox}")


def _status() -> dict[str, Any]:
    """What `status` shows, as the `--json` object (the keys are a promise to scripts).

    `outbox_waiting` is a count when the outbox can be looked into, else None, with
    `outbox_error` saying why (never a 0 that may be false). Every text is valid Unicode
    (a path's bytes that are not UTF-8 are U+FFFD), so that it can be printed as UTF-8.

    Creating the identity when tracking is on is what the command's own event
    would do anyway; when it is off, the file is only read.
    """
    enabled, reason = tracking_state()
    identity = tracker.identity
    identity_file: str | None = None
    problem: str | None = None
    data: dict[str, Any] | None = None
    try:
        identity_file = str(identity.path)
        data = identity.load_or_create() if enabled else identity.peek()
    except IdentityUnavailableError as exc:
        problem = exc.strerror or str(exc)
        if exc.filename and exc.filename != identity_file:  # its lock, say
            problem += f": {exc.filename}"
    outbox, outbox_error = _outbox()
    waiting: int | None = 0  # with no home directory, no outbox: nothing waits
    if outbox_error:
        waiting = None
    elif outbox:
        waiting = outbox.count()
    report = {
        "tracking": enabled,
        "reason": reason,
        "anon_id": (data or {}).get("anon_id"),
        "linked_principal_id": (data or {}).get("linked_principal_id"),
        "identity_file": identity_file,
        "identity_problem": problem,
        "outbox_waiting": waiting,
        "outbox_dir": str(outbox.directory) if outbox else None,
        "outbox_error": outbox_error,
    }
    return {key: valid_text(v) if isinstance(v, str) else v for key, v in report.items()}


def _outbox() -> tuple[Outbox | None, str | None]:
    """The outbox (None when there is no home directory to keep one in), and why it
    cannot be looked into (`_cannot_look_in`), None when it can."""
    try:
        outbox = Outbox()
    except OSError:
        return None, None
    return outbox, _cannot_look_in(str(outbox.directory))


def _cannot_look_in(outbox_dir: str) -> str | None:
    """Why the outbox cannot be looked into (`Permission denied`); None when it can.

    The outbox counts only what it may read, and an outbox that is not a directory of
    this user's holds nothing it will send: it says 0. Events may wait there all the
    same (it was replaced by a link, made unreadable, given away), so the status says
    it cannot see rather than pass that 0 off as a count (the log, rather than say there
    is nothing). Not there yet is 0 waiting.
    """
    import os
    import stat

    try:
        info = os.lstat(outbox_dir)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISLNK(info.st_mode):
        return "Is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "Not a directory"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return "Owned by another user"
    try:
        with os.scandir(outbox_dir) as entries:
            next(entries, None)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


@app.command()
def log(
    count: Annotated[
        int | None,
        typer.Option("-n", metavar="N", min=1, help="Show only the N newest events."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per event, for scripts.")
    ] = False,
) -> None:
    """Show the events sent in the last 7 days and those waiting, newest first.

    When the outbox cannot be looked into, events may wait there all the same: the
    log says so first (with `--json`, on stderr: stdout holds events alone), rather
    than that none wait.
    """
    import json

    # By the time each event carries (the one shown), whichever order they were sent in.
    entries = sorted(usage_log(), key=lambda e: _when(e.get("timestamp"), exact=True), reverse=True)
    entries = entries[:count]
    outbox, error = _outbox()
    outbox_dir = valid_text(str(outbox.directory)) if outbox else None
    unseen_line = f"Cannot see what waits in {outbox_dir} ({error})." if error else None
    if as_json:
        if unseen_line:
            typer.echo(unseen_line, err=True)
        for entry in entries:
            typer.echo(json.dumps(entry, ensure_ascii=False))
        return
    if not entries:
        enabled, reason = tracking_state()
        typer.echo(
            (unseen_line or "No events sent or waiting.")
            + ("" if enabled else f" Tracking is off ({valid_text(reason)}).")
        )
        return
    if unseen_line:
        typer.echo(unseen_line)
    for entry in entries:
        state = "sent   " if entry.get("sent") else "waiting"
        typer.echo(
            f"{_when(entry.get('timestamp'))}  {state}  {entry.get('event')}"
            f"  as {entry.get('distinct_id')}"
        )
        typer.echo(f"    {json.dumps(entry.get('properties', {}), ensure_ascii=False)}")


def _when(timestamp: object, *, exact: bool = False) -> str:
    """`2026-12-02 07:12:45 UTC` for the ISO time an event carries; as it is if not one.

    `exact` keeps the microseconds, in a form that sorts as the times do.
    """
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(str(timestamp))
    except ValueError:
        return str(timestamp)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC" if exact else "%Y-%m-%d %H:%M:%S UTC")


@app.command()
def enable() -> None:
    """Turn usage tracking on again."""
    try:
        enable_tracking()
    except OSError as exc:
        raise ArcadeCliError(
            f"cannot enable tracking: {valid_text(describe_os_error(exc))}"
        ) from exc
    enabled, reason = tracking_state()
    if enabled:
        typer.echo("Usage tracking is on.")
    else:
        typer.echo(f"Usage tracking is still off: {valid_text(reason)}.")


@app.command()
def disable() -> None:
    """Turn usage tracking off on this machine, for good, and drop what waits to be sent."""
    try:
        waiting = Outbox().count()
        path = disable_tracking()
    except OSError as exc:
        raise ArcadeCliError(
            f"cannot disable tracking: {valid_text(describe_os_error(exc))}"
        ) from exc
    typer.echo(f"Usage tracking is off (recorded in {valid_text(str(path))}).")
    if waiting:
        typer.echo(f"Deleted {waiting} event(s) that were waiting to be sent.")
