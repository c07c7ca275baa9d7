"""`arcade usage status|enable|disable`."""

from __future__ import annotations

import typer

from arcade_cli._tracking import tracker
from arcade_cli.exceptions import ArcadeCliError, describe_os_error
from arcade_identity import IdentityUnavailableError
from arcade_usage import Outbox, disable_tracking, enable_tracking, tracking_state

app = typer.Typer(help="See and control the usage data arcade sends.", no_args_is_help=True)


@app.command()
def status() -> None:
    """Show whether tracking is on, who events are sent as, and what waits to be sent."""
    enabled, reason = tracking_state()
    identity = tracker.identity
    try:
        data = identity.load_or_create() if enabled else identity.peek()
    except IdentityUnavailableError as exc:
        data = None
        cause = exc.__cause__
        problem: str | None = (
            f"unusable: {cause.strerror}"
            if isinstance(cause, OSError) and cause.strerror
            else f"unusable: {exc}"
        )
    else:
        problem = None
    outbox = Outbox()
    pending = outbox.count()
    typer.echo(f"Tracking:         {'on' if enabled else 'off'} ({reason})")
    typer.echo(f"Anonymous id:     {(data or {}).get('anon_id') or 'none yet'}")
    typer.echo(f"Linked principal: {(data or {}).get('linked_principal_id') or 'none'}")
    typer.echo(f"Identity file:    {identity.path}" + (f" ({problem})" if problem else ""))
    typer.echo(f"Outbox:           {pending} event(s) waiting in {outbox.directory}")


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
    """Turn usage tracking off on this machine, for good."""
    try:
        path = disable_tracking()
    except OSError as exc:
        raise ArcadeCliError(f"cannot disable tracking: {describe_os_error(exc)}") from exc
    typer.echo(f"Usage tracking is off (recorded in {path}).")
