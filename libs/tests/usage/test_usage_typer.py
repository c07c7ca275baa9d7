"""TrackedTyper in a throwaway app: one event per command, with the error the user saw."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from arcade_usage import CommandTracker
from arcade_usage._consent import notice_text
from arcade_usage.typer import ClickException, TrackedTyper
from helpers import wait_until
from servers import FakePostHog

pytestmark = pytest.mark.timeout(60)


class DeployError(ClickException):
    """A ClickException subclass, as a tool would define for its own expected failures."""


def _app() -> TrackedTyper:
    app = TrackedTyper(tracker=CommandTracker(cli_version="9.9.9"), pretty_exceptions_enable=False)
    group = typer.Typer()
    help_group = typer.Typer(no_args_is_help=True)

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

    @help_group.command()
    def other() -> None:
        typer.echo("other")

    app.add_typer(group, name="group")
    app.add_typer(help_group, name="help-group")
    return app


def _run(app: TrackedTyper, *args: str) -> Any:
    with pytest.raises(SystemExit) as exit_info:
        app(list(args), prog_name="tool")
    return exit_info.value.code


def test_help_sends_nothing_and_creates_nothing(
    posthog: FakePostHog,
    work_dir: Path,
    child_pids: Callable[[], list[int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = _app()
    assert _run(app, "--help") == 0
    assert _run(app, "group", "--help") == 0
    assert _run(app, "help-group") == 2  # shows its help, as asked: not a failure
    # No notice either. (typer 0.16 beside click 8.2+ prints an empty error box for the
    # group shown as help: typer's own output, not ours.)
    assert "ARCADE_USAGE_TRACKING=0" not in capsys.readouterr().err
    assert child_pids() == []
    assert not work_dir.exists()  # not even an identity
    assert posthog.requests == 0


def test_the_notice_comes_before_the_first_commands_output_once(
    posthog: FakePostHog, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    app = _app()

    @app.command()
    def loud() -> None:
        sys.stderr.write("the command's own line\n")

    assert _run(app, "loud") == 0
    assert _run(app, "loud") == 0
    assert capfd.readouterr().err == notice_text(80) + "the command's own line\n" * 2
    wait_until(lambda: len(posthog.command_events()) == 2)


def test_a_tools_opt_out_command_run_first_shows_no_notice_and_creates_nothing(
    posthog: FakePostHog, work_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from arcade_usage import disable_tracking

    app = TrackedTyper(tracker=CommandTracker(cli_version="9.9.9"), opt_out_command="privacy.off")
    privacy = typer.Typer()

    @privacy.command()
    def off() -> None:
        disable_tracking()
        typer.echo("off")

    @privacy.command()
    def status() -> None:
        typer.echo("status")

    app.add_typer(privacy, name="privacy")
    assert _run(app, "privacy", "off") == 0
    assert capfd.readouterr() == ("off\n", "")
    assert sorted(p.name for p in work_dir.iterdir()) == ["usage_disabled"]  # no identity
    assert posthog.requests == 0
    # Any other command is no opt-out: on a fresh machine it shows the notice first.
    (work_dir / "usage_disabled").unlink()
    assert _run(app, "privacy", "status") == 0
    assert capfd.readouterr().err.startswith(notice_text(80)[:40])
    wait_until(lambda: len(posthog.command_events()) == 1)


def test_usage_errors_are_failures_named_by_their_kind_never_by_what_was_typed(
    posthog: FakePostHog, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _app()
    assert _run(app, "no-such-command") == 2
    assert _run(app, "ok", "--token=sk-typed-by-mistake") == 2
    assert _run(app, "group", "sub", "stray-argument") == 2
    assert _run(app, "group") == 2
    seen = capsys.readouterr().err  # what the user saw, in either click's words
    assert "No such option: --token" in seen or "No such option '--token'" in seen
    wait_until(lambda: len(posthog.command_events()) == 4)
    events = sorted(posthog.command_events(), key=lambda e: str(e["timestamp"]))
    assert [(e["event"], e["properties"]["command_name"]) for e in events] == [
        ("CLI execution failed", "tool"),  # no command was recognised: the tool itself
        ("CLI execution failed", "ok"),
        ("CLI execution failed", "group.sub"),
        ("CLI execution failed", "group"),
    ]
    assert [e["properties"]["error_message"] for e in events] == [
        "No such command.",
        "No such option.",
        "Got unexpected extra argument(s).",
        "Missing command.",
    ]
    assert "typed" not in str(events)
    assert "stray" not in str(events)


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
