"""`usage.json` and `credentials.yaml` on disk: rewrites, other tools' keys, modes, odd files
and places (symlinks, FIFOs, oversized credentials, a relative work dir, no home), Cloud URL."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from arcade_identity import (
    DEFAULT_CLOUD_URL,
    Credentials,
    CredentialsError,
    UsageIdentity,
    arcade_dir,
    cloud_base_url,
    credentials_path,
    read_credentials,
    save_credentials,
)
from identity._helpers import RunPython
from servers import FakeCloud


def _fingerprint(path: Path) -> tuple[int, int, bytes]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, path.read_bytes()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("linked", [False, True], ids=["anonymous", "linked"])
def test_valid_usage_json_is_never_rewritten(
    arcade_dir: Path, run_python: RunPython, linked: bool
) -> None:
    if linked:
        save_credentials(Credentials("key-a", "a@example.com"))
        UsageIdentity().set_linked_principal_id("prn_a")
        usage = arcade_dir / "usage.json"
    else:
        # Compact, with another tool's key: any rewrite would change the bytes.
        arcade_dir.mkdir(mode=0o700)
        usage = arcade_dir / "usage.json"
        usage.write_text(json.dumps({"anon_id": str(uuid.uuid4()), "other_tool": 1}))
    before = _fingerprint(usage)

    out = run_python(
        "i = UsageIdentity()\n"
        "i.load_or_create()\n"
        "emit(distinct=i.get_distinct_id(), alias=i.should_alias(), anon=i.anon_id)\n"
    )

    assert _fingerprint(usage) == before
    assert out["alias"] is False
    assert out["distinct"] == ("prn_a" if linked else out["anon"])


def test_other_tools_keys_survive_link_and_reset(arcade_dir: Path) -> None:
    arcade_dir.mkdir(mode=0o700)
    usage = arcade_dir / "usage.json"
    first_anon = str(uuid.uuid4())
    usage.write_text(
        json.dumps({"anon_id": first_anon, "linked_principal_id": None, "theme": {"x": [1, 2]}})
    )
    save_credentials(Credentials("key-a"))

    UsageIdentity().set_linked_principal_id("prn_a")
    linked = json.loads(usage.read_bytes())
    assert linked["theme"] == {"x": [1, 2]}
    assert (linked["anon_id"], linked["linked_principal_id"]) == (first_anon, "prn_a")

    UsageIdentity().reset_to_anonymous()
    reset = json.loads(usage.read_bytes())
    assert reset["theme"] == {"x": [1, 2]}
    assert reset["linked_principal_id"] is None
    assert reset["anon_id"] != first_anon
    assert uuid.UUID(reset["anon_id"]).version == 4


def test_files_are_private_even_with_a_permissive_umask(arcade_dir: Path) -> None:
    with _umask(0):
        identity = UsageIdentity()
        identity.load_or_create()
        save_credentials(Credentials("key-a", "a@example.com"))
        identity.set_linked_principal_id("prn_a")
        identity.get_principal_id()

    assert _mode(arcade_dir) == 0o700
    assert _mode(arcade_dir / "usage.json") == 0o600
    assert _mode(arcade_dir / "credentials.yaml") == 0o600
    world = [p.name for p in arcade_dir.iterdir() if _mode(p) & 0o077]
    assert world == []


def test_rewrites_tighten_loose_existing_files(arcade_dir: Path) -> None:
    arcade_dir.mkdir(mode=0o700)
    usage = arcade_dir / "usage.json"
    usage.write_text(json.dumps({"anon_id": str(uuid.uuid4())}))
    creds = arcade_dir / "credentials.yaml"
    creds.write_text("cloud:\n  api:\n    key: old\n")
    usage.chmod(0o644)
    creds.chmod(0o644)

    with _umask(0):
        save_credentials(Credentials("key-a"))
        UsageIdentity().set_linked_principal_id("prn_a")

    assert _mode(usage) == 0o600
    assert _mode(creds) == 0o600


def test_save_credentials_writes_what_a_user_expects(arcade_dir: Path) -> None:
    path = save_credentials(Credentials("key-a", "a@example.com", "http://127.0.0.1:9/"))
    assert path == arcade_dir / "credentials.yaml"
    text = path.read_text()
    assert "key-a" in text
    assert "a@example.com" in text
    assert "coordinator_url: http://127.0.0.1:9/" in text
    # Without a custom host, no coordinator_url line at all.
    save_credentials(Credentials("key-b"))
    assert "coordinator_url" not in path.read_text()


@pytest.mark.timeout(60)
def test_loose_files_left_by_an_older_tool_are_tightened_on_use(
    arcade_dir: Path, cloud: FakeCloud, run_python: RunPython
) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    creds = save_credentials(Credentials("key-a", "a@example.com"))
    UsageIdentity().set_linked_principal_id("prn_a")
    usage = arcade_dir / "usage.json"
    arcade_dir.chmod(0o755)
    usage.chmod(0o644)
    creds.chmod(0o644)
    inode = usage.stat().st_ino

    # A steady-state command: nothing to write, yet nothing stays readable by others.
    out = run_python("i = UsageIdentity()\nemit(distinct=i.get_distinct_id(), heavy=heavy())\n")

    assert out == {"distinct": "prn_a", "heavy": []}
    assert (_mode(arcade_dir), _mode(usage), _mode(creds)) == (0o700, 0o600, 0o600)
    assert usage.stat().st_ino == inode  # tightened, not rewritten
    assert cloud.validations == 0


def test_the_users_own_symlinks_are_used_not_chmod_ed_through(
    tmp_path: Path, work_dir: Path, cloud: FakeCloud
) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    elsewhere = tmp_path / "dotfiles"
    elsewhere.mkdir(mode=0o755)
    elsewhere.chmod(0o755)
    work_dir.symlink_to(elsewhere)  # `.arcade` kept with the dotfiles
    secret = tmp_path / "secret.yaml"
    secret.write_text("cloud:\n  api:\n    key: key-a\n")
    secret.chmod(0o644)
    (elsewhere / "credentials.yaml").symlink_to(secret)

    identity = UsageIdentity(lookup_timeout=30)
    assert identity.get_principal_id() == "prn_a"
    identity.set_linked_principal_id("prn_a")
    assert UsageIdentity().get_principal_id(lookup=False) == "prn_a"

    assert (_mode(elsewhere), _mode(secret)) == (0o755, 0o644)
    assert (elsewhere / "credentials.yaml").is_symlink()
    assert _mode(elsewhere / "usage.json") == 0o600


def test_a_tracked_command_does_not_chmod_a_directory_in_place_of_credentials(
    arcade_dir: Path,
) -> None:
    """ "Tightened" is for a file of ours left loose; a directory at that name made 0600
    could no longer be entered by its owner."""
    arcade_dir.mkdir(mode=0o700)
    folder = arcade_dir / "credentials.yaml"
    folder.mkdir()
    folder.chmod(0o755)

    assert UsageIdentity().get_principal_id() is None

    assert _mode(folder) == 0o755


def test_a_relative_work_dir_is_made_absolute_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCADE_WORK_DIR", os.path.join("projects", "work"))
    expected = tmp_path / "projects" / "work"

    assert arcade_dir() == expected
    assert credentials_path() == expected / "credentials.yaml"
    identity = UsageIdentity()
    anon = identity.anon_id
    monkeypatch.chdir(tmp_path / "projects")  # the process moves on; the identity does not
    assert identity.path == expected / "usage.json"
    identity.reset_to_anonymous()
    assert json.loads((expected / "usage.json").read_bytes())["anon_id"] == identity.anon_id != anon
    assert not (tmp_path / "projects" / "projects").exists()


@pytest.mark.parametrize("value", ["~/cfg", "~"])
def test_a_work_dir_under_the_home_is_the_one_arcade_core_uses(
    value: str, isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ARCADE_WORK_DIR=~/cfg` written where no shell expands it (a .env file, a service)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCADE_WORK_DIR", value)
    theirs = subprocess.run(
        [
            sys.executable,
            "-c",
            "from arcade_core import constants; print(constants.ARCADE_CONFIG_PATH)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()

    assert arcade_dir() == Path(theirs) == isolated_env / value.removeprefix("~").lstrip("/")
    assert not (tmp_path / "~").exists()


NO_HOME = """\
import json
from arcade_identity import HomeNotFoundError, IdentityUnavailableError, UsageIdentity, arcade_dir

identity = UsageIdentity()  # at import time in a CLI: must not raise
seen = {}
calls = {
    "arcade_dir": arcade_dir,
    "load_or_create": identity.load_or_create,
    "peek": identity.peek,
    "path": lambda: identity.path,
    "credentials_path": lambda: identity.credentials_path,
    "get_distinct_id": identity.get_distinct_id,
    "get_principal_id": lambda: identity.get_principal_id(lookup=False),
    "end_session": identity.end_session,
}
for name, call in calls.items():
    try:
        call()
        seen[name] = "ok"
    except HomeNotFoundError as exc:
        seen[name] = "no home" if isinstance(exc, IdentityUnavailableError) else "wrong type"
identity.revalidate()  # nothing loaded, nothing to check
seen["created"] = identity.created
print(json.dumps(seen))
"""


def _as_a_user_without_passwd_entry() -> list[str]:
    """A command prefix that runs as a uid /etc/passwd does not know (a user namespace).

    Inside it the interpreter is still readable (files are checked as our own uid
    outside), yet `pwd.getpwuid(os.getuid())` finds no entry, as on a bare container.
    """
    unshare = shutil.which("unshare")
    uid = next((u for u in range(54321, 54421) if not _has_passwd_entry(u)), None)
    if unshare is None or uid is None:
        pytest.skip("needs util-linux unshare and a uid without a passwd entry")
    prefix = [unshare, "--user", f"--map-user={uid}", f"--map-group={uid}"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no user namespaces here: {probe.stderr.decode(errors='replace').strip()}")
    return prefix


def _has_passwd_entry(uid: int) -> bool:
    import pwd

    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform != "linux", reason="user namespaces are Linux's")
def test_no_home_directory_is_a_quiet_specific_error_on_first_use(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "ARCADE_WORK_DIR")}
    result = subprocess.run(
        [*_as_a_user_without_passwd_entry(), sys.executable, "-c", NO_HOME],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=cwd,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    seen = json.loads(result.stdout)
    assert seen.pop("created") is False
    assert seen == dict.fromkeys(seen, "no home")
    assert len(seen) == 8
    assert list(cwd.iterdir()) == []  # nothing was made relative to the working dir


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [64 * 1024 + 1, 50 * 1024 * 1024])
def test_oversized_credentials_are_unreadable_and_cost_nothing(
    arcade_dir: Path, cloud: FakeCloud, run_python: RunPython, size: int
) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    head = b"cloud:\n  api:\n    key: key-a\n"
    arcade_dir.mkdir(mode=0o700)
    with (arcade_dir / "credentials.yaml").open("wb") as file:
        file.write(head + b"#" * (size - len(head) - 1) + b"\n")

    with pytest.raises(CredentialsError, match="larger than 64 KiB"):
        read_credentials()
    out = run_python(
        "i = UsageIdentity()\n"
        "start = time.monotonic()\n"
        "principal = i.get_principal_id()\n"
        "emit(principal=principal, elapsed=time.monotonic() - start)\n"
    )
    assert out["principal"] is None
    assert out["elapsed"] < 1.0  # read at most 64 KiB + 1 bytes, parse nothing
    assert cloud.validations == 0


@pytest.mark.timeout(60)
def test_credentials_just_under_the_limit_still_work(arcade_dir: Path, cloud: FakeCloud) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    head = b"cloud:\n  api:\n    key: key-a\n"
    arcade_dir.mkdir(mode=0o700)
    (arcade_dir / "credentials.yaml").write_bytes(head + b"#" * (64 * 1024 - len(head) - 1) + b"\n")
    assert read_credentials() == Credentials("key-a")
    assert UsageIdentity(lookup_timeout=30).get_principal_id() == "prn_a"


@pytest.mark.timeout(60)
def test_fifos_in_place_of_our_files_never_block(arcade_dir: Path, run_python: RunPython) -> None:
    arcade_dir.mkdir(mode=0o700)
    os.mkfifo(arcade_dir / "credentials.yaml")
    os.mkfifo(arcade_dir / "usage.json")

    with pytest.raises(CredentialsError, match="not a regular file"):
        read_credentials()
    out = run_python(
        "i = UsageIdentity()\n"
        "emit(principal=i.get_principal_id(), anon=i.anon_id, created=i.created)\n",
        timeout=20,
    )
    assert out["principal"] is None
    assert out["created"] is True  # a FIFO is no identity: replaced by one
    usage = arcade_dir / "usage.json"
    assert stat.S_ISREG(usage.lstat().st_mode)
    assert json.loads(usage.read_bytes())["anon_id"] == out["anon"]


@pytest.mark.parametrize("target", ["another_tools_json", "dangling"])
def test_a_symlinked_usage_json_is_replaced_never_followed(
    tmp_path: Path, arcade_dir: Path, target: str
) -> None:
    other = tmp_path / "other.json"
    other_bytes = json.dumps(
        {"anon_id": str(uuid.uuid4()), "linked_principal_id": "prn_x", "token": "s3cret"}
    ).encode()
    if target == "another_tools_json":
        other.write_bytes(other_bytes)
        other.chmod(0o644)
    arcade_dir.mkdir(mode=0o700)
    usage = arcade_dir / "usage.json"
    usage.symlink_to(other)

    identity = UsageIdentity()
    assert identity.peek() is None  # a link is no identity of ours
    data = identity.load_or_create()

    assert not usage.is_symlink()
    on_disk = json.loads(usage.read_bytes())
    assert on_disk == data
    assert sorted(on_disk) == ["anon_id", "linked_principal_id"]  # nothing copied
    assert on_disk["linked_principal_id"] is None
    assert identity.get_distinct_id() == on_disk["anon_id"]
    if target == "another_tools_json":
        assert other.read_bytes() == other_bytes  # not written through
        assert _mode(other) == 0o644  # not even chmod-ed through
        assert json.loads(other_bytes)["anon_id"] != on_disk["anon_id"]
    else:
        assert not other.exists()


def test_other_tools_keys_survive_every_transition(arcade_dir: Path) -> None:
    arcade_dir.mkdir(mode=0o700)
    usage = arcade_dir / "usage.json"
    usage.write_text(json.dumps({"anon_id": str(uuid.uuid4()), "theme": "dark"}))
    save_credentials(Credentials("key-a"))

    assert UsageIdentity().link_principal("prn_a", lambda anon, principal: True, timeout=5)
    assert json.loads(usage.read_bytes())["theme"] == "dark"
    assert UsageIdentity().link_principal("prn_b", lambda anon, principal: True, timeout=5)
    assert json.loads(usage.read_bytes())["theme"] == "dark"
    assert UsageIdentity().end_session() == "prn_b"
    assert json.loads(usage.read_bytes())["theme"] == "dark"


class TestCloudBaseUrl:
    def test_env_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ARCADE_CLOUD_URL", "http://127.0.0.1:1234/")
        creds = Credentials("k", coordinator_url="http://127.0.0.1:5678")
        assert cloud_base_url(creds) == "http://127.0.0.1:1234"

    def test_then_the_saved_coordinator(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("ARCADE_CLOUD_URL")
        creds = Credentials("k", coordinator_url="http://127.0.0.1:5678/")
        assert cloud_base_url(creds) == "http://127.0.0.1:5678"

    def test_empty_env_does_not_count(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ARCADE_CLOUD_URL", "")
        creds = Credentials("k", coordinator_url="http://127.0.0.1:5678")
        assert cloud_base_url(creds) == "http://127.0.0.1:5678"

    def test_else_arcade_cloud(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("ARCADE_CLOUD_URL")
        assert DEFAULT_CLOUD_URL == "https://cloud.arcade.dev"
        assert cloud_base_url(None) == DEFAULT_CLOUD_URL
        assert cloud_base_url(Credentials("k")) == DEFAULT_CLOUD_URL
