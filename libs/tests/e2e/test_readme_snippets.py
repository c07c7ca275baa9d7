"""Every code block of the READMEs does what the README says, or says why it is not run.

Python examples run as written (saved to a file, run by this venv's Python in a fresh
home) and their events reach a fake PostHog; the opt-out block runs in bash; every
`arcade ...` line shown is a command line `arcade` accepts. A block added to a README
fails `test_every_block_is_accounted_for` until it is listed below.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import ARCADE, run_arcade, sender_pids, wait_until
from servers import FakePostHog

pytestmark = pytest.mark.timeout(120)

WORKSPACE = Path(__file__).resolve().parents[3]
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Python:
    """Run as `python example.py *args`: prints `stdout`, sends `events`.

    Each event is (event name, the properties it must have).
    """

    args: tuple[str, ...] = ()
    stdout: str = ""
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    makes_identity: bool = True


@dataclass(frozen=True)
class ArcadeLines:
    """Each `arcade ...` line is a command line `arcade` accepts (commands and options exist)."""


@dataclass(frozen=True)
class Bash:
    """Run as written by bash with `arcade` on PATH; then `arcade usage status --json` has
    `status`."""

    status: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NotRun:
    why: str


Block = Python | ArcadeLines | Bash | NotRun


def _succeeded(command: str, cli_name: str = "mytool") -> tuple[str, dict[str, Any]]:
    return ("CLI execution succeeded", {"command_name": command, "cli_name": cli_name})


INSTALLS = NotRun("installs from PyPI; the packaging test installs the wheels themselves")
DEVELOPS = NotRun("the developer's loop: it runs this very test suite")

DOCS: dict[str, list[Block]] = {
    "README.md": [
        DEVELOPS,
        INSTALLS,
        Bash(status={"tracking": False, "reason": "ARCADE_USAGE_TRACKING=0 is set"}),
        Python(stdout="hello\n", events=(_succeeded("hello"),)),
        ArcadeLines(),
        DEVELOPS,
    ],
    "libs/arcade-cli/README.md": [INSTALLS, ArcadeLines()],
    "libs/arcade-identity/README.md": [Python()],
    "libs/arcade-usage/README.md": [
        INSTALLS,
        Python(args=("sync",), stdout="synced\n", events=(_succeeded("sync"),)),
        Python(args=("push",), stdout="push: done\n", events=(_succeeded("push"),)),
        Python(args=("sync",), stdout="synced\n", events=(_succeeded("sync"),)),
        Python(
            events=(
                ("MCP server started", {"transport": "stdio", "tool_count": 1}),
                ("MCP tool called", {"is_execution_success": True}),
                (
                    "MCP tool called",
                    {"is_execution_success": False, "failure_reason": "division by zero"},
                ),
            )
        ),
        NotRun(
            "starts an arcade-mcp-server app on stdio; usage/test_usage_arcade_mcp_server.py "
            "runs that swap with a real server"
        ),
    ],
}


def _blocks(readme: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block of `readme`, in order."""
    text = (WORKSPACE / readme).read_text(encoding="utf-8")
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(text)]


def _cases(kind: type) -> list[Any]:
    return [
        pytest.param(readme, code, block, id=f"{readme}#{i}")
        for readme, blocks in DOCS.items()
        for i, ((_, code), block) in enumerate(zip(_blocks(readme), blocks, strict=False))
        if isinstance(block, kind)
    ]


def test_every_block_is_accounted_for() -> None:
    readmes = {
        "README.md",
        *(str(p.relative_to(WORKSPACE)) for p in WORKSPACE.glob("libs/*/README.md")),
    }
    assert set(DOCS) == readmes
    for readme, expected in DOCS.items():
        blocks = _blocks(readme)
        assert len(blocks) == len(expected), f"{readme}: list its new block in DOCS"
        for (language, _), block in zip(blocks, expected, strict=True):
            if isinstance(block, Python):
                assert language == "python", readme
            elif not isinstance(block, NotRun):
                assert language == "sh", readme


@pytest.mark.parametrize(("readme", "code", "block"), _cases(Python))
def test_python_examples_run_as_written_and_send_their_events(
    posthog: FakePostHog, work_dir: Path, tmp_path: Path, readme: str, code: str, block: Python
) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script), *block.args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == block.stdout
    assert (work_dir / "usage.json").exists() == block.makes_identity
    if block.events:
        wait_until(lambda: len(posthog.events()) >= len(block.events))
    wait_until(lambda: not sender_pids(work_dir))
    got = sorted(posthog.events(), key=lambda e: str(e["timestamp"]))
    assert len(got) == len(block.events), got
    for event, (name, properties) in zip(got, block.events, strict=True):
        assert event["event"] == name
        assert {k: event["properties"].get(k) for k in properties} == properties


@pytest.mark.parametrize(("readme", "code", "block"), _cases(Bash))
def test_shell_examples_run_as_written(
    posthog: FakePostHog, work_dir: Path, readme: str, code: str, block: Bash
) -> None:
    env = {**os.environ, "PATH": f"{ARCADE.parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-e", "-c", code + "\narcade usage status --json\n"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout.splitlines()[-1])
    assert {k: status[k] for k in block.status} == block.status
    assert posthog.requests == 0


def _arcade_lines(code: str) -> list[list[str]]:
    lines = []
    for line in code.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["arcade"]:
            lines.append(words[1:])
    return lines


@pytest.mark.parametrize(("readme", "code", "block"), _cases(ArcadeLines))
def test_every_arcade_line_shown_is_one_arcade_accepts(
    posthog: FakePostHog, readme: str, code: str, block: ArcadeLines
) -> None:
    lines = _arcade_lines(code)
    assert lines
    for words in lines:
        path = []
        for word in words:
            if word.startswith("-"):
                break
            path.append(word)
        options = [w.split("=")[0] for w in words if w.startswith("--")]
        shown = run_arcade(*path, "--help")
        assert shown.returncode == 0, (words, shown.stderr)
        for option in options:
            assert re.search(rf"(^|[ ,]){re.escape(option)}\b", shown.stdout, re.M), (
                words,
                shown.stdout,
            )
