"""Damaged `usage.json` and `credentials.yaml`: the user's command keeps working."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from arcade_identity import (
    Credentials,
    IdentityUnavailableError,
    UsageIdentity,
    save_credentials,
)
from helpers import run_arcade
from servers import FakeCloud

JUNK = bytes(range(256)) * 4

# Broken identities; none of their keys is carried into the replacement: ours mean
# nothing without a valid anon_id, and the rest may be some other tool's file.
BROKEN_USAGE = {
    "empty": b"",
    "truncated": b"{",
    "list": b"[]",
    "anon_id_number": b'{"anon_id": 5, "other_tool": {"x": 1}}',
    "anon_id_not_uuid": b'{"anon_id": "not-a-uuid", "theme": "dark"}',
    "anon_id_uuid_lookalike": b'{"anon_id": " ' + b"0" * 31 + b'", "k": 1}',
    "no_anon_id": b'{"linked_principal_id": "prn_x", "linked_credentials": {}, "k": [1]}',
    "binary_junk": JUNK,
    "deeply_nested": b"[" * 100_000,
    "larger_than_any_identity": b'{"anon_id": "%s", "pad": "%s"}'
    % (str(uuid.uuid4()).encode(), b"x" * (1 << 20)),
}


@pytest.mark.parametrize("name", list(BROKEN_USAGE))
def test_invalid_usage_json_is_replaced_by_a_fresh_identity(arcade_dir: Path, name: str) -> None:
    arcade_dir.mkdir(mode=0o700)
    usage = arcade_dir / "usage.json"
    usage.write_bytes(BROKEN_USAGE[name])

    identity = UsageIdentity()
    data = identity.load_or_create()

    on_disk = json.loads(usage.read_bytes())
    assert uuid.UUID(on_disk["anon_id"]).version == 4
    assert on_disk["anon_id"] == data["anon_id"] == identity.get_distinct_id()
    assert on_disk["linked_principal_id"] is None  # a broken file vouches for no one
    assert sorted(on_disk) == ["anon_id", "linked_principal_id"]  # nothing salvaged
    assert identity.created is True
    # Repaired for good: the next process keeps that identity.
    assert UsageIdentity().anon_id == on_disk["anon_id"]


@pytest.mark.parametrize("blocker", ["usage_json_is_a_directory", "arcade_dir_is_a_file"])
def test_unusable_identity_location_is_a_quiet_no_op(arcade_dir: Path, blocker: str) -> None:
    if blocker == "usage_json_is_a_directory":
        (arcade_dir / "usage.json").mkdir(parents=True)
    else:
        arcade_dir.write_bytes(b"not a directory")

    identity = UsageIdentity()
    with pytest.raises(IdentityUnavailableError):
        identity.load_or_create()
    with pytest.raises(IdentityUnavailableError):
        identity.peek()
    # Nothing was moved out of the way or created in its place.
    if blocker == "usage_json_is_a_directory":
        assert (arcade_dir / "usage.json").is_dir()
    else:
        assert arcade_dir.read_bytes() == b"not a directory"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("blocker", ["usage_json_is_a_directory", "deeply_nested_json"])
def test_arcade_usage_status_survives_a_broken_identity(arcade_dir: Path, blocker: str) -> None:
    if blocker == "usage_json_is_a_directory":
        (arcade_dir / "usage.json").mkdir(parents=True)
    else:
        arcade_dir.mkdir()
        (arcade_dir / "usage.json").write_bytes(b"[" * 100_000)

    result = run_arcade("usage", "status")

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "Tracking:" in result.stdout
    if blocker == "usage_json_is_a_directory":
        assert "Anonymous id:     none yet" in result.stdout
    else:  # repaired on the way
        anon_id = json.loads((arcade_dir / "usage.json").read_bytes())["anon_id"]
        assert f"Anonymous id:     {anon_id}" in result.stdout


BROKEN_CREDENTIALS = {
    "bad_yaml": b"cloud: [unclosed\n  api: {key:",
    "a_list": b"- cloud\n- api\n",
    "cloud_is_a_number": b"cloud: 5\n",
    "key_is_a_number": b"cloud:\n  api:\n    key: 12345\n",
    "key_is_a_mapping": b"cloud:\n  api:\n    key: {a: 1}\n",
    "python_tag": b"cloud: !!python/object/apply:os.system ['true']\n",
    "binary_junk": JUNK,
    "deeply_nested": b"[" * 100_000,
}


@pytest.mark.parametrize("name", list(BROKEN_CREDENTIALS))
def test_broken_credentials_mean_anonymous(arcade_dir: Path, cloud: FakeCloud, name: str) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    arcade_dir.mkdir(mode=0o700)
    (arcade_dir / "credentials.yaml").write_bytes(BROKEN_CREDENTIALS[name])

    identity = UsageIdentity()
    assert identity.get_principal_id() is None
    assert identity.should_alias() is False
    assert identity.get_distinct_id() == identity.anon_id
    assert cloud.validations == 0


def test_credentials_broken_after_linking_mean_anonymous(
    arcade_dir: Path, cloud: FakeCloud
) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    save_credentials(Credentials("key-a", "a@example.com"))
    UsageIdentity().set_linked_principal_id("prn_a")
    (arcade_dir / "credentials.yaml").write_bytes(b"cloud: [unclosed")

    identity = UsageIdentity()
    assert identity.linked_principal_id == "prn_a"
    assert identity.get_principal_id() is None  # not the stale link: no key, no principal
    assert identity.get_distinct_id() == identity.anon_id
    assert cloud.validations == 0


def test_unreadable_credentials_mean_anonymous(arcade_dir: Path, cloud: FakeCloud) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    path = save_credentials(Credentials("key-a", "a@example.com"))
    if os.geteuid() == 0:
        # root reads through chmod 000; a directory in the file's place cannot be read by anyone.
        path.unlink()
        path.mkdir()
    else:
        path.chmod(0)
    try:
        identity = UsageIdentity()
        assert identity.get_principal_id() is None
        assert identity.get_distinct_id() == identity.anon_id
        assert cloud.validations == 0
    finally:
        if path.is_file():
            path.chmod(0o600)
