"""Errors the arcade command reports to the user as one line and exit code 1."""

from __future__ import annotations

from arcade_usage.typer import ClickException


class ArcadeCliError(ClickException):
    """An expected failure: shown as `Error: <message>` on stderr, exit code 1."""


def describe_os_error(exc: OSError) -> str:
    """`reason: path`, so that the user knows which file is in the way."""
    reason = exc.strerror or str(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason
