"""`arcade usage status|enable|disable`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from arcade_cli._tracking import tracker
from arcade_cli.exceptions import ArcadeCliError, describe_os_error
from arcade_identity import IdentityUnavailableError
from arcade_usage import Outbox, disable_tracking, enable_tracking, tracking_state

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
    waiting = 0
    outbox_dir: str | None = None
    try:
        outbox = Outbox()
        outbox_dir = str(outbox.directory)
        waiting = outbox.count()
    except OSError:  # no home directory: no outbox either
        pass
    return {
        "tracking": enabled,
        "reason": reason,
        "anon_id": (data or {}).get("anon_id"),
        "linked_principal_id": (data or {}).get("linked_principal_id"),
        "identity_file": identity_file,
        "identity_problem": problem,
        "outbox_waiting": waiting,
        "outbox_dir": outbox_dir,
    }


@app.command()
def enable() -> None:
    """Turn usage tracking on again."""
    try:
        enable_tracking()
    except OSError as exc:
        raise ArcadeCliError(f"cannot enable tracking: {describe_os_error(exc)}") from exc
    enabled, reason = tracking_state()
    if enabled:
        typer.echo("Usage tracking is on.")
    else:
        typer.echo(f"Usage tracking is still off: {reason}.")


@app.command()
def disable() -> None:
    """Turn usage tracking off on this machine, for good, and drop what waits to be sent."""
    try:
        waiting = Outbox().count()
        path = disable_tracking()
    except OSError as exc:
        raise ArcadeCliError(f"cannot disable tracking: {describe_os_error(exc)}") from exc
    typer.echo(f"Usage tracking is off (recorded in {path}).")
    if waiting:
        typer.echo(f"Deleted {waiting} event(s) that were waiting to be sent.")
