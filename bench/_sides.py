"""The trackers under test, each in a throw-away venv installed the way a user would.

`ours`: wheels built from this workspace (`uv build --package ...`), installed with
`uv pip install --compile-bytecode`; posthog-python's own client is measured from
this venv too (arcade-usage depends on it). `shipped`: `arcade-mcp==1.16.3` from the
index, installed the same way; `mcp-server`: the latest `arcade-mcp-server`. Every
venv gets the loopback guard (`_guard.py`).
"""

from __future__ import annotations

import json
import os
import re
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
MCP_SERVER_REQUIREMENT = "arcade-mcp-server"
OUR_DIRS = ("arcade-identity", "arcade-usage", "arcade-cli")  # under libs/

PRINCIPAL = "prn_bench_0001"
EMAIL = "bench@example.com"
API_KEY = "arc_bench_key_0001"  # ours: an API key in credentials.yaml
ACCESS_TOKEN = "bench_access_token_0001"  # shipped: an OAuth access token
GUARD_MODULE = "_arcade_bench_guard"


class BuildError(Exception):
    """A venv could not be built (uv failed); the message names the uv command."""


def _uv(*args: str, cwd: Path = ROOT) -> None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    done = subprocess.run(
        ["uv", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BuildError(f"`uv {' '.join(args[:2])} ...` failed: {last}")


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


def _export(revision: str, into: Path) -> None:
    """The tree of `revision` (a commit, a tag) as plain files, leaving the repository alone."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision], cwd=ROOT, capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise BuildError(f"`git archive {revision}` failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def _package_names(tree: Path) -> list[str]:
    """Each of our members' distribution name, as that tree spells it (the CLI's changed)."""
    names = []
    for directory in OUR_DIRS:
        text = (tree / "libs" / directory / "pyproject.toml").read_text()
        found = re.search(r'^name\s*=\s*"([^"]+)"', text, re.MULTILINE)
        if found is None:
            raise BuildError(f"no project name in libs/{directory}/pyproject.toml")
        names.append(found.group(1))
    return names


def build_ours(revision: str | None = None) -> Path:
    """Wheels of the working tree, or of `revision` when given, in `.venvs/ours`."""
    wheels = VENVS / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    source = ROOT
    if revision is not None:
        source = VENVS / "source"
        shutil.rmtree(source, ignore_errors=True)
        _export(revision, source)
    for package in _package_names(source):
        _uv(
            "build",
            "--quiet",
            "--package",
            package,
            "--wheel",
            "--out-dir",
            str(wheels),
            cwd=source,
        )
    venv = VENVS / "ours"
    _make_venv(venv, [str(p) for p in sorted(wheels.glob("*.whl"))])
    return venv


def build_shipped() -> Path:
    venv = VENVS / "shipped"
    _make_venv(venv, [SHIPPED_REQUIREMENT])
    return venv


def build_mcp_server() -> Path:
    venv = VENVS / "mcp-server"
    _make_venv(venv, [MCP_SERVER_REQUIREMENT])
    return venv


def installed_version(venv: Path, distribution: str) -> str:
    """The version of `distribution` in `venv`, from its dist-info directory name."""
    prefix = distribution.replace("-", "_") + "-"
    for entry in _site_packages(venv).glob("*.dist-info"):
        if entry.name.lower().startswith(prefix.lower()):
            return entry.name[len(prefix) : -len(".dist-info")]
    return "unknown"


@dataclass
class Servers:
    posthog_url: str
    cloud_url: str


@dataclass
class Side:
    """One tracker: how to run it, its cheap tracked command, and how to prepare a home for it.

    `flavour` says whose files and settings it uses: `ours` (arcade-identity's files,
    the host from the environment) or `arcade_core` (arcade-mcp's and
    arcade-mcp-server's: its own files, a hard-coded host the guard redirects).
    """

    name: str
    venv: Path
    tracked: tuple[str, ...]
    guard_log: Path
    flavour: str = "ours"

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
        # ARCADE_WORK_DIR names the configuration folder itself, for both sides.
        env["ARCADE_WORK_DIR"] = str(home / ".arcade")
        if self.flavour != "ours":
            env["ARCADE_BENCH_POSTHOG_HOST"] = servers.posthog_url
            env["ARCADE_DISABLE_AUTOUPDATE"] = "1"  # its PyPI update check is not tracking
        if not tracking:
            env["ARCADE_USAGE_TRACKING"] = "0"
        return env

    def prepare(self, home: Path, servers: Servers, *, credentials: bool, linked: bool) -> None:
        """A home in the steady state: identity exists; optionally logged in and linked."""
        home.mkdir(parents=True, exist_ok=True)
        if self.flavour == "ours":
            _prepare_ours(home, servers, credentials=credentials, linked=linked)
        else:
            _prepare_shipped(home, servers, credentials=credentials, linked=linked)


def _prepare_ours(home: Path, servers: Servers, *, credentials: bool, linked: bool) -> None:
    """Written with arcade-identity's public API, so the files are exactly what it expects.

    Steady state: the (empty) outbox a first command's sender leaves behind exists too.
    """
    from arcade_identity import OUTBOX_DIR, Credentials, UsageIdentity, save_credentials

    identity = UsageIdentity(home / ".arcade")
    identity.load_or_create()
    (identity.directory / OUTBOX_DIR).mkdir(mode=0o700, exist_ok=True)
    if credentials:
        save_credentials(Credentials(API_KEY, EMAIL, servers.cloud_url), home / ".arcade")
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
