"""What `arcade` looks like in a terminal: the first-run notice, the key prompt, the browser
wait, a reader that goes away, shell completion.

A terminal here is a real pseudo-terminal that is the command's controlling terminal, with
its own width: what `getpass` and the terminal-size query need, and what a user's tmux is.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import pytest

from arcade_identity import read_credentials
from arcade_usage._consent import notice_text
from cli.live_arcade import LiveArcade
from helpers import ARCADE, run_arcade, wait_until
from servers import FakeCloud, FakePostHog

# A terminal (a pty, its modes and window size) is a Unix thing: elsewhere, nothing here runs.
fcntl = pytest.importorskip("fcntl")
termios = pytest.importorskip("termios")

if TYPE_CHECKING:
    from cli.accounts import Account

pytestmark = pytest.mark.timeout(90)

# Runs in the child: make the pty on fd 0 the controlling terminal of the new session
# (what a terminal emulator does for its shell), then become `arcade`.
_BECOME_ARCADE = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


class Terminal:
    """`arcade ARGS` in a pseudo-terminal `columns` wide; stdout and stderr both on screen."""

    def __init__(self, *args: str, columns: int = 80) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BECOME_ARCADE, str(ARCADE), *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                env=env,
            )
        finally:
            os.close(slave)
        self.screen = b""

    def _read(self, deadline: float) -> bool:
        """Read what the screen shows next; False once the command has closed the terminal."""
        ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: every process holding the terminal has gone
            return False
        self.screen += chunk
        return bool(chunk)

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            if time.monotonic() > deadline or not self._read(deadline):
                raise AssertionError(f"{text!r} never shown: {self.text!r}")

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def finish(self, timeout: float = 20) -> tuple[int, str]:
        """(exit code, the whole screen, lines ending in plain newlines)."""
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            if time.monotonic() > deadline:
                raise AssertionError(f"still running: {self.text!r} ({self._state()})")
        return self.proc.wait(timeout=max(1.0, deadline - time.monotonic())), self.text

    def _state(self) -> str:
        """What the kernel says of the command (Linux): where it waits, its signals, threads."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            wchan = Path(f"/proc/{self.proc.pid}/wchan").read_text()
        except OSError:
            return "no /proc"
        keep = ("State", "Threads", "SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
        lines = [line.replace("\t", " ") for line in status.splitlines() if line.startswith(keep)]
        return "; ".join([*lines, f"wchan {wchan}"])

    @property
    def text(self) -> str:
        return self.screen.decode(errors="replace").replace("\r\n", "\n")

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self.master)


# -- the first-run notice ------------------------------------------------------------------


@pytest.mark.parametrize("columns", [80, 60])
def test_the_notice_fits_the_terminal_and_comes_before_the_output(
    posthog: FakePostHog, work_dir: Path, columns: int
) -> None:
    with Terminal("usage", "status", columns=columns) as terminal:
        code, screen = terminal.finish()
    assert code == 0, screen
    notice = notice_text(columns)
    assert screen.startswith(notice), screen
    assert screen[len(notice) :].startswith("Tracking:         on (the default)\n")
    assert max(len(line) for line in notice.splitlines()) <= columns
    assert max(len(line) for line in notice.splitlines()) > columns - 15  # it fills the width
    assert "`arcade usage disable`" in notice  # a command is never cut in two
    wait_until(posthog.command_events)


def test_the_notice_comes_before_the_error_when_the_first_command_fails(
    posthog: FakePostHog, work_dir: Path
) -> None:
    with Terminal("whoami") as terminal:
        code, screen = terminal.finish()
    assert code == 1, screen
    assert screen == notice_text(80) + "Error: not logged in. Run `arcade login`.\n"
    wait_until(posthog.command_events)


def test_a_usage_error_on_the_first_run_is_followed_by_the_notice(
    posthog: FakePostHog, work_dir: Path
) -> None:
    # typer prints the error before the tool regains control; the run is tracked all the
    # same (a failure of `usage.status`), so the notice is due, and comes right after.
    with Terminal("usage", "status", "--jsn") as terminal:
        code, screen = terminal.finish()
    assert code == 2, screen
    assert screen.startswith("Usage: arcade usage status [OPTIONS]\n")
    assert screen.endswith(notice_text(80))  # the notice comes last, right after the error
    error = screen[: -len(notice_text(80))]
    # click's words for it: "No such option: --jsn" (typer >= 0.26), "No such option
    # '--jsn'." (typer 0.16 beside click 8.2+)
    assert "No such option: --jsn" in error or "No such option '--jsn'" in error, screen
    [event] = wait_until(posthog.command_events)
    assert event["properties"]["command_name"] == "usage.status"
    assert event["properties"]["error_message"] == "No such option."


def test_help_shows_no_notice_and_creates_nothing(posthog: FakePostHog, arcade_dir: Path) -> None:
    with Terminal("--help") as terminal:
        code, screen = terminal.finish()
    assert code == 0, screen
    assert screen.startswith("Usage: arcade [OPTIONS] COMMAND [ARGS]...\n")
    assert "Arcade tools collect" not in screen
    assert not arcade_dir.exists()


def test_without_a_terminal_the_notice_is_wrapped_to_80_columns_on_stderr_once(
    posthog: FakePostHog, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    first = run_arcade("usage", "status")
    assert first.returncode == 0, first.stderr
    assert first.stderr == notice_text(80)
    assert first.stdout.startswith("Tracking:         on (the default)\n")
    again = run_arcade("usage", "status", env={"COLUMNS": "50"})
    assert again.stderr == ""
    wait_until(lambda: len(posthog.command_events()) == 2)


def test_columns_in_the_environment_wins_over_the_terminal(
    posthog: FakePostHog, work_dir: Path
) -> None:
    result = run_arcade("usage", "status", env={"COLUMNS": "72"})
    assert result.stderr == notice_text(72)
    assert max(len(line) for line in result.stderr.splitlines()) <= 72
    wait_until(posthog.command_events)


# -- the API key at a terminal -------------------------------------------------------------


def test_api_key_dash_at_a_terminal_prompts_without_echo_and_saves_the_key(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    with Terminal("login", "--api-key", "-") as terminal:
        terminal.wait_for("Arcade API key (not shown): ")
        terminal.press(account_a.key + "\n")
        code, screen = terminal.finish()
    assert code == 0, screen
    assert screen == f"Arcade API key (not shown): \nLogged in as {account_a.email}.\n"
    assert account_a.key not in screen
    credentials = read_credentials(arcade_dir)
    assert credentials is not None
    assert credentials.api_key == account_a.key
    wait_until(lambda: len(posthog.command_events()) == 2)
    assert posthog.command_events()[1]["distinct_id"] == account_a.principal


def test_nothing_typed_at_the_key_prompt_is_one_line_and_nothing_saved(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str
) -> None:
    with Terminal("login", "--api-key", "-") as terminal:
        terminal.wait_for("Arcade API key (not shown): ")
        terminal.press("\n")
        code, screen = terminal.finish()
    assert code == 1, screen
    assert screen.endswith("\nError: --api-key -: no API key was typed.\n")
    assert not (arcade_dir / "credentials.yaml").exists()
    assert cloud.validations == 0


def test_ctrl_c_at_the_key_prompt_says_aborted_and_the_event_says_the_same(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str
) -> None:
    with Terminal("login", "--api-key", "-") as terminal:
        terminal.wait_for("Arcade API key (not shown): ")
        terminal.press("\x03")  # the terminal turns it into SIGINT for the foreground job
        code, screen = terminal.finish()
    assert code == 130, screen
    assert screen == "Arcade API key (not shown): \nAborted.\n"
    [_, event] = wait_until(lambda: len(posthog.command_events()) == 2 and posthog.command_events())
    assert event["event"] == "CLI execution failed"
    assert event["properties"]["command_name"] == "login"
    assert event["properties"]["error_message"] == "Aborted."
    assert not (arcade_dir / "credentials.yaml").exists()


def test_ctrl_d_at_the_key_prompt_aborts_and_the_event_says_what_was_shown(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str
) -> None:
    with Terminal("login", "--api-key", "-") as terminal:
        terminal.wait_for("Arcade API key (not shown): ")
        terminal.press("\x04")  # end of input
        code, screen = terminal.finish()
    assert code == 1, screen
    assert screen == "Arcade API key (not shown): \nAborted!\n"
    [_, event] = wait_until(lambda: len(posthog.command_events()) == 2 and posthog.command_events())
    assert event["properties"]["error_message"] == "Aborted!"
    assert not (arcade_dir / "credentials.yaml").exists()


def test_the_browser_login_says_it_waits_and_how_to_cancel(
    posthog: FakePostHog, cloud: FakeCloud, first_run: str
) -> None:
    with LiveArcade("login", "--no-browser", "--timeout", "30") as arcade:
        url = arcade.wait_for_line("http")
        waiting = arcade.wait_for_line("Waiting")
        arcade.interrupt()
        code, stdout, stderr = arcade.finish()
    assert "/api/v1/auth/cli_login?" in url
    assert waiting == "Waiting for the login to finish in the browser (Ctrl-C to cancel)..."
    assert (code, stderr) == (130, "Aborted.\n")
    assert stdout.startswith("Open this URL in your browser to log in:\n")


# -- a reader that goes away ---------------------------------------------------------------


def _status_read_one_line() -> tuple[int, str, str]:
    """`arcade usage status | head -1`: read the first line, then close the pipe."""
    proc = subprocess.Popen(
        [str(ARCADE), "usage", "status"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        stderr = proc.stderr.read()
        return proc.wait(timeout=30), first, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_a_reader_that_stops_after_one_line_ends_it_quietly_50_times_out_of_50(
    posthog: FakePostHog, first_run: str
) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(lambda _: _status_read_one_line(), range(50)))
    assert [first for _, first, _ in results] == ["Tracking:         on (the default)\n"] * 50
    assert [stderr for _, _, stderr in results] == [""] * 50
    codes = {code for code, _, _ in results}
    assert codes <= {0, 128 + signal.SIGPIPE}, codes


def test_a_shell_pipeline_into_head_ends_quietly(posthog: FakePostHog, first_run: str) -> None:
    result = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$0" usage status | head -1', str(ARCADE)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout == "Tracking:         on (the default)\n"
    assert result.stderr == ""
    assert result.returncode in (0, 141)


# -- shell completion ----------------------------------------------------------------------


def test_help_offers_completion_and_readable_metavars(posthog: FakePostHog) -> None:
    root = run_arcade("--help")
    assert "--install-completion" in root.stdout
    assert "--show-completion" in root.stdout
    login = run_arcade("login", "--help")
    assert "--api-key KEY" in login.stdout
    assert "--host URL" in login.stdout
    assert "<" not in login.stdout


def test_show_completion_prints_a_bash_script_that_completes(
    posthog: FakePostHog, work_dir: Path
) -> None:
    # `; true`: bash would otherwise exec arcade, and typer detects the shell from the parent.
    shown = subprocess.run(
        ["bash", "-c", '"$0" --show-completion bash; true', str(ARCADE)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "_arcade_completion()" in shown.stdout
    assert "complete -o default -F _arcade_completion arcade" in shown.stdout
    completes = run_arcade(
        env={"_ARCADE_COMPLETE": "complete_bash", "COMP_WORDS": "arcade us", "COMP_CWORD": "1"}
    )
    assert completes.stdout.split() == ["usage"]
    options = run_arcade(
        env={
            "_ARCADE_COMPLETE": "complete_bash",
            "COMP_WORDS": "arcade login --",
            "COMP_CWORD": "2",
        }
    )
    assert options.stdout.split() == ["--api-key", "--host", "--no-browser", "--help"]
    assert completes.stderr == options.stderr == ""  # no notice in the middle of a prompt


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_get_their_completions(
    posthog: FakePostHog, work_dir: Path, shell: str
) -> None:
    env = {"_ARCADE_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": "arcade usage st"}
    if shell == "fish":
        env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    result = run_arcade(env=env)
    assert result.returncode == 0, result.stderr
    assert "status" in result.stdout
    assert result.stderr == ""


def test_a_completion_request_is_not_tracked(posthog: FakePostHog, work_dir: Path) -> None:
    env = {"_ARCADE_COMPLETE": "complete_bash", "COMP_WORDS": "arcade us", "COMP_CWORD": "1"}
    assert run_arcade(env=env).stdout.split() == ["usage"]
    status = run_arcade("usage", "status", "--json")
    assert json.loads(status.stdout)["tracking"] is True
    wait_until(posthog.command_events)
    assert [e["properties"]["command_name"] for e in posthog.command_events()] == ["usage.status"]
