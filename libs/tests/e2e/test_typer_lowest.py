"""TrackedTyper under typer 0.16.x, the version Arcade's own CLI pins, with the newest posthog.

The workspace runs the newest typer and, because arcade-core caps it, posthog 6.x.
Here a venv of its own (made once per test session, shared by the xdist workers)
holds the local arcade-identity and arcade-usage with `typer==0.16.*` and whatever
posthog is newest: both ends of what our packages declare.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import package_index_env, wait_until
from servers import FakePostHog

WORKSPACE = Path(__file__).resolve().parents[3]
_MACHINE_HOME = os.environ.get("HOME", "")  # uv's cache, before the autouse fixture moves HOME
UNREACHABLE = ("failed to fetch", "dns error", "connect", "network", "timed out", "offline")

APP = """\
from __future__ import annotations
import sys
from typing import Annotated
import typer
import posthog.version
from arcade_usage import CommandTracker
from arcade_usage.typer import TrackedTyper

app = TrackedTyper(tracker=CommandTracker(cli_version="1.0.0", cli_name="old-typer-tool"))

@app.command()
def hello(
    ctx: typer.Context, who: Annotated[str, typer.Option("--name", help="whom")] = "world"
) -> None:
    print(typer.__version__, posthog.version.VERSION, ctx.info_name, who)

@app.command()
def bye() -> None:
    pass

app(sys.argv[1:], prog_name="old-typer-tool")
"""


def _uv(*args: str) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    assert uv is not None
    env = {**package_index_env(), "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    if _MACHINE_HOME:
        env["HOME"] = _MACHINE_HOME
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [uv, *args],
        cwd=WORKSPACE,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="session")
def typer_016_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv's python, made once for the session (under a lock, for xdist workers)."""
    from filelock import FileLock

    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH: cannot make the typer 0.16 venv")
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this session's, the same for every xdist worker
    venv = shared / "typer-0.16-venv"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    with FileLock(str(shared / "typer-0.16-venv.lock")):
        skipped = venv / "skipped"
        if skipped.exists():
            pytest.skip(skipped.read_text())
        if not (venv / "ready").exists():
            made = _uv("venv", "--quiet", "--python", sys.executable, str(venv))
            assert made.returncode == 0, made.stderr
            installed = _uv(
                "pip",
                "install",
                "--quiet",
                "--python",
                str(python),
                "typer==0.16.*",
                "./libs/arcade-identity",
                "./libs/arcade-usage",
            )
            if installed.returncode != 0:
                if any(word in installed.stderr.lower() for word in UNREACHABLE):
                    reason = f"PyPI is unreachable: {installed.stderr.strip()[:200]}"
                    skipped.write_text(reason)
                    pytest.skip(reason)
                pytest.fail(f"uv pip install failed:\n{installed.stderr}")
            (venv / "ready").write_text("")
    return python


@pytest.mark.timeout(240)
def test_tracked_typer_tracks_a_command_under_typer_016_and_the_newest_posthog(
    typer_016_python: Path, posthog: FakePostHog, tmp_path: Path
) -> None:
    script = tmp_path / "old_typer_tool.py"
    script.write_text(APP)

    result = subprocess.run(
        [str(typer_016_python), str(script), "hello", "--name", "arcade"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    typer_version, posthog_version, info_name, name = result.stdout.split()
    assert typer_version.startswith("0.16."), typer_version
    assert int(posthog_version.split(".")[0]) >= 7, posthog_version  # the newest major
    assert (info_name, name) == ("hello", "arcade")
    [event] = wait_until(posthog.command_events, timeout=30)
    assert event["properties"]["command_name"] == "hello"
    assert event["properties"]["cli_name"] == "old-typer-tool"
    assert event["properties"]["$lib_version"] == posthog_version
    no_private = subprocess.run(
        [str(typer_016_python), "-c", "import typer._click"], capture_output=True, check=False
    )
    assert no_private.returncode != 0  # typer 0.16 has no typer._click: we never needed it


@pytest.mark.timeout(240)
def test_usage_errors_are_recorded_by_kind_under_typer_016(
    typer_016_python: Path, posthog: FakePostHog, tmp_path: Path
) -> None:
    script = tmp_path / "old_typer_tool.py"
    script.write_text(APP)
    for args in (["hello", "--nmae=secret-typo"], ["bye", "stray"], ["hello", "--name"]):
        result = subprocess.run(
            [str(typer_016_python), str(script), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
    wait_until(lambda: len(posthog.command_events()) == 3, timeout=30)
    events = sorted(posthog.command_events(), key=lambda e: str(e["timestamp"]))
    assert [
        (e["properties"]["command_name"], e["properties"]["error_message"]) for e in events
    ] == [
        ("hello", "No such option."),
        ("bye", "Got unexpected extra argument(s)."),
        ("hello", "Option '--name' requires an argument."),
    ]
    assert "secret" not in str(events)
    assert "stray" not in str(events)
