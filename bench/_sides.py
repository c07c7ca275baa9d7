"""The two CLIs under test, each in a throw-away venv installed the way a user would.

`ours`: wheels built from this workspace (`uv build --package ...`), installed with
`uv pip install --compile-bytecode`. `shipped`: `arcade-mcp==1.16.3` from the index,
installed the same way. Both venvs get the loopback guard (`_guard.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENVS = BENCH_DIR / ".venvs"
SHIPPED_REQUIREMENT = "arcade-mcp==1.16.3"
OUR_PACKAGES = ("arcade-identity", "arcade-usage", "arcade-cli")

PRINCIPAL = "prn_bench_0001"
EMAIL = "bench@example.com"
API_KEY = "arc_bench_key_0001"  # ours: an API key in credentials.yaml
ACCESS_TOKEN = "bench_access_token_0001"  # shipped: an OAuth access token
GUARD_MODULE = "_arcade_bench_guard"


def _uv(*args: str) -> None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(["uv", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3.*/site-packages"))
    if not found:
        raise RuntimeError(f"no site-packages in {venv}")
    return found[0]


def _make_venv(venv: Path, requirements: list[str]) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    _uv("venv", "--quiet", "--python", python, str(venv))
    _uv(
        "pip",
        "install",
        "--quiet",
        "--compile-bytecode",
        "--python",
        str(venv / "bin" / "python"),
        *requirements,
    )
    site = _site_packages(venv)
    shutil.copyfile(BENCH_DIR / "_guard.py", site / f"{GUARD_MODULE}.py")
    (site / f"{GUARD_MODULE}.pth").write_text(f"import {GUARD_MODULE}; {GUARD_MODULE}.install()\n")
    # The guard is imported by every process of the venv: give it bytecode too.
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "compileall", "-q", str(site / f"{GUARD_MODULE}.py")],
        check=True,
    )


def build_ours() -> Path:
    wheels = VENVS / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    for package in OUR_PACKAGES:
        _uv("build", "--quiet", "--package", package, "--wheel", "--out-dir", str(wheels))
    venv = VENVS / "ours"
    _make_venv(venv, [str(p) for p in sorted(wheels.glob("*.whl"))])
    return venv


def build_shipped() -> Path:
    venv = VENVS / "shipped"
    _make_venv(venv, [SHIPPED_REQUIREMENT])
    return venv


@dataclass
class Servers:
    posthog_url: str
    cloud_url: str


@dataclass
class Side:
    """One CLI: how to run it, its cheap tracked command, and how to prepare a home for it."""

    name: str
    venv: Path
    tracked: tuple[str, ...]
    guard_log: Path

    @property
    def arcade(self) -> str:
        return str(self.venv / "bin" / "arcade")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def env(self, home: Path, servers: Servers, *, tracking: bool = True) -> dict[str, str]:
        env = {
            "PATH": f"{self.venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "NO_PROXY": "*",
            "TERM": "dumb",
            "ARCADE_BENCH_GUARD_LOG": str(self.guard_log),
            "ARCADE_CLOUD_URL": servers.cloud_url,
            "ARCADE_USAGE_POSTHOG_HOST": servers.posthog_url,
            "ARCADE_USAGE_POSTHOG_API_KEY": "phc_bench",
        }
        if self.name == "ours":
            env["ARCADE_WORK_DIR"] = str(home)
        else:
            # arcade-mcp's ARCADE_WORK_DIR names the .arcade directory itself.
            env["ARCADE_WORK_DIR"] = str(home / ".arcade")
            env["ARCADE_BENCH_POSTHOG_HOST"] = servers.posthog_url
            env["ARCADE_DISABLE_AUTOUPDATE"] = "1"  # its PyPI update check is not tracking
        if not tracking:
            env["ARCADE_USAGE_TRACKING"] = "0"
        return env

    def prepare(self, home: Path, servers: Servers, *, credentials: bool, linked: bool) -> None:
        """A home in the steady state: identity exists; optionally logged in and linked."""
        home.mkdir(parents=True, exist_ok=True)
        if self.name == "ours":
            _prepare_ours(home, servers, credentials=credentials, linked=linked)
        else:
            _prepare_shipped(home, servers, credentials=credentials, linked=linked)


def _prepare_ours(home: Path, servers: Servers, *, credentials: bool, linked: bool) -> None:
    """Written with arcade-identity's public API, so the files are exactly what it expects."""
    from arcade_identity import Credentials, UsageIdentity, save_credentials

    identity = UsageIdentity(home)
    identity.load_or_create()
    if credentials:
        save_credentials(Credentials(API_KEY, EMAIL, servers.cloud_url), home)
    if linked:
        identity.set_linked_principal_id(PRINCIPAL)


def _prepare_shipped(home: Path, servers: Servers, *, credentials: bool, linked: bool) -> None:
    directory = home / ".arcade"
    directory.mkdir(mode=0o700, exist_ok=True)
    usage = {"anon_id": str(uuid.uuid4()), "linked_principal_id": PRINCIPAL if linked else None}
    (directory / "usage.json").write_text(json.dumps(usage, indent=2))
    if credentials:
        (directory / "credentials.yaml").write_text(
            "cloud:\n"
            f"  coordinator_url: {servers.cloud_url}\n"
            "  auth:\n"
            f"    access_token: {ACCESS_TOKEN}\n"
            "    refresh_token: bench_refresh_token\n"
            "    expires_at: '2099-01-01T00:00:00'\n"
            "  user:\n"
            f"    email: {EMAIL}\n"
            "  context:\n"
            "    org_id: org_bench\n"
            "    org_name: Bench\n"
            "    project_id: prj_bench\n"
            "    project_name: Bench\n"
        )
