"""The three wheels build alone, carry PyPI-style metadata, and work installed in a fresh venv."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from email.parser import Parser
from importlib.metadata import version
from pathlib import Path

import pytest

from helpers import package_index_env, wait_until
from servers import FakePostHog

WORKSPACE = Path(__file__).resolve().parents[3]
PACKAGES = {
    "arcade-identity": "arcade_identity",
    "arcade-usage": "arcade_usage",
    "arcade-cli": "arcade_cli",
}


def _uv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    assert uv is not None
    env = {**package_index_env(), "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [uv, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, f"uv {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def _check_wheel(wheel: Path, module: str) -> Message:
    """The wheel's metadata, after checking its requirements, py.typed and license."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    requirements = metadata.get_all("Requires-Dist") or []
    assert requirements, f"{wheel.name} declares no dependencies"
    for requirement in requirements:
        lowered = requirement.lower()
        assert "workspace" not in lowered, requirement
        assert "file:" not in lowered, requirement
        assert " @ " not in requirement, requirement  # a direct (path or URL) reference
        assert any(op in requirement for op in (">=", "==", "~=", "<")), requirement
    assert f"{module}/py.typed" in names
    assert metadata["License-Expression"] or metadata["License"]
    assert any("/licenses/" in n or n.endswith("/LICENSE") for n in names), names
    return metadata


@pytest.mark.timeout(300)
def test_wheels_install_from_pypi_style_metadata_and_track(
    posthog: FakePostHog, tmp_path: Path, work_dir: Path
) -> None:
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH: cannot build or install the wheels")
    dist = tmp_path / "dist"
    for package in PACKAGES:
        _uv("build", "--package", package, "--out-dir", str(dist), "--quiet", cwd=WORKSPACE)

    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == 3, wheels
    metadata = {}
    for package, module in PACKAGES.items():
        [wheel] = [w for w in wheels if w.name.startswith(f"{module}-")]
        metadata[package] = _check_wheel(wheel, module)
    cli_version = str(metadata["arcade-cli"]["Version"])
    assert cli_version == version("arcade-cli")
    cli_requirements = metadata["arcade-cli"].get_all("Requires-Dist") or []
    assert any(r.startswith("arcade-usage[typer]") for r in cli_requirements), cli_requirements

    venv = tmp_path / "venv"
    outside = tmp_path / "elsewhere"  # not the workspace: nothing to import from by accident
    outside.mkdir()
    _uv("venv", str(venv), "--python", sys.executable, "--quiet", cwd=outside)
    python = venv / "bin" / "python"
    _uv("pip", "install", "--python", str(python), *map(str, wheels), "--quiet", cwd=outside)

    where = subprocess.run(
        [str(python), "-c", "import arcade_cli, arcade_usage; print(arcade_cli.__file__)"],
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(venv)

    arcade = venv / "bin" / "arcade"
    shown = subprocess.run(
        [str(arcade), "--version"],
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == cli_version

    status = subprocess.run(
        [str(arcade), "usage", "status"],
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert "Tracking:         on" in status.stdout
    assert "arcade usage disable" in status.stderr
    [event] = wait_until(posthog.command_events)
    assert event["properties"]["command_name"] == "usage.status"
    assert event["properties"]["cli_version"] == cli_version
    assert (work_dir / ".arcade" / "usage.json").exists()
