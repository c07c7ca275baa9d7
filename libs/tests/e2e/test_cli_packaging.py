"""The three wheels build alone, install by the name `arcade-dev-cli`, and work in a fresh venv."""

from __future__ import annotations

import os
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
# distribution -> (workspace folder, import package)
PACKAGES = {
    "arcade-identity": ("arcade-identity", "arcade_identity"),
    "arcade-usage": ("arcade-usage", "arcade_usage"),
    "arcade-dev-cli": ("arcade-cli", "arcade_cli"),
}
# uv keeps its cache under the home directory, which the autouse fixture replaces
# with an empty one: read where it is before that, so installs reuse what is cached.
_MACHINE_HOME = os.environ.get("HOME", "")


def _uv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    assert uv is not None
    env = {**package_index_env(), "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    if _MACHINE_HOME:
        env["HOME"] = _MACHINE_HOME
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [uv, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, f"uv {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def _check_wheel(wheel: Path, module: str) -> Message:
    """The wheel's metadata, after checking its requirements, py.typed, license and URLs."""
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
    classifiers = metadata.get_all("Classifier") or []
    for minor in (10, 11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers, classifiers
    urls = {u.split(",")[0].strip() for u in metadata.get_all("Project-URL") or []}
    assert {"Homepage", "Source", "Issues"} <= urls, urls
    return metadata


def _installed_from_workspace(python: Path, cwd: Path) -> None:
    """Every installed module of ours is the workspace's source, not a namesake from the index."""
    for folder, module in PACKAGES.values():
        found = subprocess.run(
            [str(python), "-c", f"import {module}; print({module}.__file__)"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        installed = Path(found).parent
        source = WORKSPACE / "libs" / folder / "src" / module
        ours = sorted(p.relative_to(source) for p in source.rglob("*.py"))
        assert ours
        assert sorted(p.relative_to(installed) for p in installed.rglob("*.py")) == ours
        for name in ours:
            assert (installed / name).read_bytes() == (source / name).read_bytes(), name


@pytest.mark.timeout(300)
def test_wheels_install_by_name_from_pypi_style_metadata_and_track(
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
    for package, (_, module) in PACKAGES.items():
        [wheel] = [w for w in wheels if w.name.startswith(f"{package.replace('-', '_')}-")]
        metadata[package] = _check_wheel(wheel, module)
    cli = metadata["arcade-dev-cli"]
    assert cli["Name"] == "arcade-dev-cli"
    cli_version = str(cli["Version"])
    assert cli_version == version("arcade-dev-cli")
    cli_requirements = cli.get_all("Requires-Dist") or []
    assert any(r.startswith("arcade-usage[typer]") for r in cli_requirements), cli_requirements

    venv = tmp_path / "venv"
    outside = tmp_path / "elsewhere"  # not the workspace: nothing to import from by accident
    outside.mkdir()
    _uv("venv", str(venv), "--python", sys.executable, "--quiet", cwd=outside)
    python = venv / "bin" / "python"
    # By name, as a user would: our wheels are found beside the index, every other
    # dependency comes from the index. uv caches a found wheel by its file name, which
    # stays the same from commit to commit (and a later run may get the same tmp_path):
    # refresh ours, or an earlier build of the same version is installed instead.
    refresh = [arg for package in PACKAGES for arg in ("--refresh-package", package)]
    _uv(
        "pip",
        "install",
        "--python",
        str(python),
        "--find-links",
        str(dist),
        *refresh,
        f"arcade-dev-cli=={cli_version}",
        "--quiet",
        cwd=outside,
    )
    _installed_from_workspace(python, outside)

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
    assert "Traceback" not in status.stderr
    [event] = wait_until(posthog.command_events)
    assert event["event"] == "CLI execution succeeded"
    assert event["properties"]["command_name"] == "usage.status"
    assert event["properties"]["cli_version"] == cli_version
    assert (work_dir / "usage.json").exists()
