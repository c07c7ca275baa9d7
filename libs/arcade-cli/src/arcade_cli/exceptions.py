"""Errors the arcade command reports to the user as one line and exit code 1."""

from __future__ import annotations

from typer._click.exceptions import ClickException


class ArcadeCliError(ClickException):
    """An expected failure: shown as `Error: <message>` on stderr, exit code 1."""
