"""TrackedTyper in a throwaway app: one event per command, with the error the user saw."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from arcade_usage import CommandTracker
from arcade_usage.typer import ClickException, TrackedTyper
from helpers import wait_until
from servers import FakePostHog

pytestmark = pytest.mark.timeout(60)


class DeployError(ClickException):
    """A ClickException subclass, as a tool would define for its own expected failures."""


def _app() -> TrackedTyper:
    app = TrackedTyper(tracker=CommandTracker(cli_version="9.9.9"), pretty_exceptions_enable=False)
    group = typer.Typer()

    @app.command()
    def ok() -> None:
        typer.echo("fine")

    @app.command()
    def boom() -> None:
        raise RuntimeError("kaboom")

    @app.command()
    def bye() -> None:
        raise typer.Exit(code=3)

    @app.command()
    def deploy() -> None:
        raise DeployError("the target refused the deployment")

    @group.command()
    def sub() -> None:
        typer.echo("nested")

    app.add_typer(group, name="group")
    return app


def _run(app: TrackedTyper, *args: str) -> Any:
    with pytest.raises(SystemExit) as exit_info:
        app(list(args), prog_name="tool")
    return exit_info.value.code


def test_help_and_usage_errors_send_nothing(
    posthog: FakePostHog, work_dir: Path, child_pids: Callable[[], list[int]]
) -> None:
    app = _app()
    assert _run(app, "--help") == 0
    assert _run(app, "group", "--help") == 0
    assert _run(app, "no-such-command") == 2
    assert child_pids() == []
    assert not work_dir.exists()  # not even an identity
    assert posthog.requests == 0


def test_each_command_reports_its_outcome(
    posthog: FakePostHog, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _app()
    assert _run(app, "ok") == 0
    with pytest.raises(RuntimeError, match="kaboom"):
        app(["boom"], prog_name="tool")
    assert _run(app, "bye") == 3
    assert _run(app, "deploy") == 1
    assert _run(app, "group", "sub") == 0
    assert "nested" in capsys.readouterr().out

    wait_until(lambda: len(posthog.command_events()) >= 5)
    events = {e["properties"]["command_name"]: e for e in posthog.command_events()}
    assert sorted(events) == ["boom", "bye", "deploy", "group.sub", "ok"]
    outcome = {name: e["event"].rsplit(" ", 1)[1] for name, e in events.items()}
    assert outcome == {
        "ok": "succeeded",
        "boom": "failed",
        "bye": "failed",
        "deploy": "failed",
        "group.sub": "succeeded",
    }
    errors = {n: e["properties"].get("error_message") for n, e in events.items()}
    assert errors["ok"] is None
    assert errors["group.sub"] is None
    assert errors["boom"] == "RuntimeError: kaboom"
    assert errors["bye"] == "exit code 3"
    assert errors["deploy"] == "the target refused the deployment"
    assert all(isinstance(e["properties"]["duration"], float) for e in events.values())
    assert len(posthog.command_events()) == 5


def test_a_one_command_app_reports_the_command_not_the_program(posthog: FakePostHog) -> None:
    # Regression: typer runs a lone command as the root, and its name was the program's.
    app = TrackedTyper(tracker=CommandTracker(cli_version="9.9.9"))

    @app.command()
    def say_hello() -> None:
        typer.echo("hello")

    assert _run(app) == 0
    event = wait_until(posthog.command_events)[0]
    assert event["properties"]["command_name"] == "say-hello"


def test_a_command_that_takes_the_context_itself_gets_it_and_is_tracked(
    posthog: FakePostHog, capsys: pytest.CaptureFixture[str]
) -> None:
    # TrackedTyper asks typer for the context the way any callback does; a callback
    # that asks for it too gets the very same one, with its other parameters.
    app = TrackedTyper(tracker=CommandTracker(cli_version="9.9.9"))
    group = typer.Typer()

    @group.command()
    def show(ctx: typer.Context, name: str = typer.Option("x", "--name")) -> None:
        typer.echo(f"{ctx.info_name} {name}")

    @app.command()
    def other() -> None:
        pass

    app.add_typer(group, name="config")

    assert _run(app, "config", "show", "--name", "y") == 0
    assert capsys.readouterr().out == "show y\n"
    event = wait_until(posthog.command_events)[0]
    assert event["properties"]["command_name"] == "config.show"
    # The parameter TrackedTyper adds is not an option the user sees.
    assert _run(app, "config", "show", "--help") == 0
    assert "arcade" not in capsys.readouterr().out.lower()
