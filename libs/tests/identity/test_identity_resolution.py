"""Who events belong to, across processes: linking, credential changes, and a lean start-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from arcade_identity import Credentials, UsageIdentity, remove_credentials, save_credentials
from identity._helpers import RunPython
from servers import FakeCloud

# Scripts that expect a lookup to succeed give it a generous budget: a loaded machine
# must not turn these into timeout tests (the 2 s budget has tests of its own).
# "Process 1": looks the key up, aliases, links (what the tracker does after login).
LINK = """\
i = UsageIdentity(lookup_timeout=60)
before = i.should_alias()
principal = i.get_principal_id()
i.set_linked_principal_id(principal)
emit(principal=principal, before=before, after=UsageIdentity().should_alias())
"""

# Any later command: who would its event belong to?
CHECK = """\
i = UsageIdentity(lookup_timeout=60)
emit(
    linked=i.linked_principal_id,
    principal=i.get_principal_id(),
    alias=i.should_alias(),
    distinct=i.get_distinct_id(),
    anon=i.anon_id,
    heavy=heavy(),
)
"""


@pytest.fixture
def linked_to_a(cloud: FakeCloud, run_python: RunPython) -> Path:
    """Credentials for account A, linked by an earlier process; returns the credentials path."""
    cloud.add_account("key-a", "prn_a", "a@example.com")
    cloud.add_account("key-b", "prn_b", "b@example.com")
    path = save_credentials(Credentials("key-a", "a@example.com"))
    out = run_python(LINK)
    assert out == {"principal": "prn_a", "before": True, "after": False}
    assert cloud.validations == 1
    return path


@pytest.mark.timeout(60)
def test_link_is_trusted_by_later_processes_without_network(
    linked_to_a: Path, cloud: FakeCloud, run_python: RunPython
) -> None:
    out = run_python(CHECK)
    assert out["linked"] == out["principal"] == out["distinct"] == "prn_a"
    assert out["alias"] is False
    assert out["heavy"] == []  # no YAML parse, no HTTP client, no lock
    assert cloud.validations == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["atomic_replace", "in_place_same_size"])
def test_another_accounts_key_is_looked_up_and_aliased(
    linked_to_a: Path, cloud: FakeCloud, run_python: RunPython, how: str
) -> None:
    before = linked_to_a.stat()
    if how == "atomic_replace":
        save_credentials(Credentials("key-b", "b@example.com"))
    else:
        raw = linked_to_a.read_bytes()
        with linked_to_a.open("r+b") as f:
            f.write(raw.replace(b"key-a", b"key-b"))
        after = linked_to_a.stat()
        assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)

    out = run_python(CHECK)
    assert out["linked"] == "prn_a"
    assert out["principal"] == out["distinct"] == "prn_b"
    assert out["alias"] is True
    assert cloud.validations == 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["touch", "rewritten_same_bytes"])
def test_same_credentials_are_still_the_linked_ones(
    linked_to_a: Path, cloud: FakeCloud, run_python: RunPython, how: str
) -> None:
    before = linked_to_a.stat()
    if how == "touch":
        os.utime(linked_to_a, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    else:  # e.g. a tool that re-saves the same login: new inode, same bytes
        save_credentials(Credentials("key-a", "a@example.com"))
        assert linked_to_a.stat().st_ino != before.st_ino

    for _ in range(2):  # and it stays that way, command after command
        out = run_python(CHECK)
        assert out["principal"] == out["distinct"] == "prn_a"
        assert out["alias"] is False
        assert out["heavy"] == []
    assert cloud.validations == 1


@pytest.mark.timeout(60)
def test_deleted_credentials_mean_anonymous(
    linked_to_a: Path, cloud: FakeCloud, run_python: RunPython
) -> None:
    assert remove_credentials() is True
    assert remove_credentials() is False

    out = run_python(CHECK)
    assert out["principal"] is None
    assert out["distinct"] == out["anon"]
    assert out["alias"] is False
    assert cloud.validations == 1


@pytest.mark.timeout(60)
def test_reset_to_anonymous_is_seen_by_the_next_process(
    linked_to_a: Path, cloud: FakeCloud, run_python: RunPython
) -> None:
    first = run_python(CHECK)
    remove_credentials()
    run_python("UsageIdentity().reset_to_anonymous()\nemit()")

    out = run_python(CHECK)
    assert out["linked"] is None
    assert out["anon"] != first["anon"]
    assert out["distinct"] == out["anon"]

    # Logging in again later: the key is looked up afresh and the new anon_id aliased.
    save_credentials(Credentials("key-a", "a@example.com"))
    out = run_python(CHECK)
    assert out["principal"] == "prn_a"
    assert out["alias"] is True
    assert cloud.validations == 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("state", ["linked", "anonymous"])
def test_steady_state_imports_nothing_heavy(
    state: str, cloud: FakeCloud, run_python: RunPython
) -> None:
    if state == "linked":
        cloud.add_account("key-a", "prn_a", "a@example.com")
        save_credentials(Credentials("key-a", "a@example.com"))
        UsageIdentity().set_linked_principal_id("prn_a")
    else:
        UsageIdentity().load_or_create()

    out = run_python(
        "from arcade_identity import UsageIdentity\n"
        "i = UsageIdentity()\n"
        "emit(distinct=i.get_distinct_id(), heavy=heavy())\n"
    )
    assert out["heavy"] == []
    assert out["distinct"] == ("prn_a" if state == "linked" else UsageIdentity().anon_id)
    assert cloud.validations == 0
