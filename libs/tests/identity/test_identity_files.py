"""`usage.json` and `credentials.yaml` on disk: rewrites, other tools' keys, modes, Cloud URL."""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from arcade_identity import (
    DEFAULT_CLOUD_URL,
    Credentials,
    UsageIdentity,
    cloud_base_url,
    save_credentials,
)

RunPython = Callable[..., dict[str, Any]]


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
