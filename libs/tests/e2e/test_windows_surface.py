"""Windows' `os` surface: the commands, the tracker and the sender with the Unix-only names gone.

Every process these tests start (the `arcade` commands, a server's tracker, and
the senders they start in turn) runs with `windows_site/sitecustomize.py`: no
`fcntl`, no `O_NONBLOCK`, `O_NOFOLLOW`, `O_CLOEXEC`, `pwrite`, `pread`, `getuid`,
`fchmod`... What a Windows user would meet first, an AttributeError or an
ImportError on a name Linux has, shows here. What Windows does differently
beyond its names (its locks, its ACLs, `os.replace` on an open file) is chosen
by functions tested in `identity/test_identity_platforms.py`, and run for real
only on a Windows machine (the GitHub Actions workflow).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tracking_process
from arcade_usage import ServerTracker
from cli.accounts import ALPHA
from helpers import run_arcade, sender_pids, wait_until
from servers import FakeCloud, FakePostHog
from windows_surface import surface_env

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not sys.platform.startswith("linux"),
        reason="Windows' os surface shown on Linux (and senders found through /proc);"
        " on Windows the whole suite runs with the real one",
    ),
]

COMMANDS = [
    ("usage", "status"),
    ("login", "--api-key", ALPHA.key),
    ("whoami",),
    ("usage", "status", "--json"),
    ("logout",),
]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# How many events wait depends on how far a sender has got, on Linux too.
WAITING = re.compile(r'(?<="outbox_waiting": )\d+|\d+(?= event\(s\) waiting)')


def _run_commands(env: dict[str, str], work_dir: Path) -> list[tuple[int, str, str]]:
    """Each command's exit code, stdout and stderr, with what differs run to run made neutral."""
    screens = []
    for command in COMMANDS:
        result = run_arcade(*command, env=env)
        out, err = (
            WAITING.sub("<n>", UUID.sub("<uuid>", text.replace(str(work_dir), "<dir>")))
            for text in (result.stdout, result.stderr)
        )
        screens.append((result.returncode, out, err))
    return screens


def _processes_under_the_surface(log: Path) -> list[list[str]]:
    return [ast.literal_eval(line) for line in log.read_text().splitlines()]


def test_the_commands_exit_as_on_linux(
    cloud: FakeCloud, posthog: FakePostHog, work_dir: Path, tmp_path: Path
) -> None:
    cloud.add_account(ALPHA.key, ALPHA.principal, ALPHA.email)
    linux_dir = tmp_path / "linux"
    linux_dir.mkdir()
    linux_env = {"HOME": str(linux_dir), "ARCADE_WORK_DIR": str(linux_dir)}
    log = tmp_path / "surface.log"
    try:
        on_linux = _run_commands(linux_env, linux_dir)
        on_windows = _run_commands(surface_env(log), work_dir)
    finally:
        wait_until(lambda: not sender_pids(linux_dir) and not sender_pids(work_dir), timeout=12)

    assert on_windows == on_linux
    assert [code for code, _, _ in on_windows] == [0, 0, 0, 0, 0]
    assert "Error" not in "".join(out + err for _, out, err in on_windows)
    # The surface was in force in every command, and in the senders they started
    # (`python -s` keeps PYTHONPATH).
    processes = _processes_under_the_surface(log)
    assert any(argv[-2:] == ["-m", "arcade_usage"] for argv in processes), processes
    commands = [argv for argv in processes if "arcade_usage" not in argv]
    assert len(commands) == len(COMMANDS), commands
    assert [tuple(argv[-len(c) :]) for argv, c in zip(commands, COMMANDS, strict=True)] == COMMANDS


def test_the_commands_events_arrive(
    cloud: FakeCloud, posthog: FakePostHog, work_dir: Path, tmp_path: Path
) -> None:
    cloud.add_account(ALPHA.key, ALPHA.principal, ALPHA.email)
    log = tmp_path / "surface.log"
    try:
        for command in COMMANDS:
            assert run_arcade(*command, env=surface_env(log)).returncode == 0
        wait_until(lambda: len(posthog.command_events()) >= len(COMMANDS), timeout=20)
    finally:
        wait_until(lambda: not sender_pids(work_dir), timeout=12)

    events = posthog.command_events()
    assert [e["properties"]["command_name"] for e in events] == [
        "usage.status",
        "login",
        "whoami",
        "usage.status",
        "logout",
    ]
    assert len({e["uuid"] for e in posthog.events()}) == len(posthog.events())
    assert posthog.aliases() == [(events[0]["distinct_id"], ALPHA.principal)]
    # They were carried by senders that ran under the surface too.
    assert any("arcade_usage" in argv for argv in _processes_under_the_surface(log))


def test_a_server_trackers_start_and_calls_arrive_once(
    posthog: FakePostHog, work_dir: Path, tmp_path: Path
) -> None:
    ServerTracker(server_version="1.2.3").identity.load_or_create()
    log = tmp_path / "surface.log"
    try:
        driver = subprocess.run(
            [sys.executable, str(Path(tracking_process.__file__)), "20", "1", "0", "exit"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **surface_env(log)},
            check=False,
        )
        assert driver.returncode == 0, driver.stderr
        assert driver.stderr == ""
        assert json.loads(driver.stdout)["senders"] >= 1
        wait_until(lambda: len(posthog.events()) >= 21, timeout=20)
    finally:
        wait_until(lambda: not sender_pids(work_dir), timeout=12)

    events = posthog.events()
    assert [e["event"] for e in events].count("MCP server started") == 1
    assert [e["event"] for e in events].count("MCP tool called") == 20
    assert len({e["uuid"] for e in events}) == 21
    assert all(posthog.times_carried(e["uuid"]) == 1 for e in events)
    assert any("arcade_usage" in argv for argv in _processes_under_the_surface(log))
