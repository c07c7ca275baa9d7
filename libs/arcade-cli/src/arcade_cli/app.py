"""The `arcade` Typer application: its commands and global options."""

from __future__ import annotations

from typing import Annotated

import typer

from arcade_cli._tracking import tracker
from arcade_cli.commands import auth, usage
from arcade_cli.main import DISTRIBUTION
from arcade_usage import installed_version
from arcade_usage.typer import TrackedTyper

app = TrackedTyper(
    name="arcade",
    help="Arcade's command-line tool.",
    tracker=tracker,
    logout_command="logout",
    opt_out_command="usage.disable",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit it
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.command(context_settings=auth.STRAY_WORDS)(auth.login)
app.command(context_settings=auth.STRAY_WORDS)(auth.logout)
app.command(context_settings=auth.STRAY_WORDS)(auth.whoami)
app.add_typer(usage.app, name="usage")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(installed_version(DISTRIBUTION))
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Arcade's command-line tool."""
