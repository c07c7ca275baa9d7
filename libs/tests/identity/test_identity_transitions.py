"""Link, account switch and logout happen once, however many processes make them together.

Each race test starts PROCESSES workers, lets each prepare as a command would
(load the identity, look the principal up), then releases them together and
counts, from files every worker appends to, how many aliases and logouts were
made. The PostHog alias is a callback that takes ALIAS_SECONDS, as a request would.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from arcade_identity import (
    CREDENTIALS_GONE_GRACE,
    Credentials,
    IdentityBusyError,
    IdentityUnavailableError,
    UsageIdentity,
    remove_credentials,
    save_credentials,
)
from helpers import lock_held, rounds
from identity._helpers import LOOKUP_TIMEOUT, lines, worker_pool
from servers import FakeCloud

PROCESSES = 12
ROUNDS = rounds(1)  # ARCADE_TEST_ROUNDS sets it for the whole suite

# Figures of every race round, printed at the end of each test (`pytest -s` shows them).
Tally = dict[str, int]


def _on_disk(work_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((work_dir / "usage.json").read_bytes())
    return data


def _leftovers(work_dir: Path) -> list[str]:
    return [p.name for p in work_dir.iterdir() if p.name.endswith(".tmp")]


def _report(name: str, tally: Tally) -> None:
    print(f"\n{name}: " + ", ".join(f"{k} {v}" for k, v in tally.items()))


@pytest.fixture
def accounts(cloud: FakeCloud) -> FakeCloud:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    cloud.add_account("key-b", "prn_b", "b@example.com")
    return cloud


@pytest.mark.timeout(120)
def test_many_processes_finding_new_credentials_alias_once(
    tmp_path: Path, accounts: FakeCloud
) -> None:
    tally = {"processes": 0, "aliases": 0, "links stored": 0, "rounds": ROUNDS}
    with worker_pool(PROCESSES) as pool:
        for round_no in range(ROUNDS):
            work_dir = tmp_path / f"link-{round_no}"
            anon = UsageIdentity(work_dir).anon_id
            save_credentials(Credentials("key-a", "a@example.com"), work_dir)

            reports = pool.round(work_dir, "link")

            assert [r["principal"] for r in reports] == ["prn_a"] * PROCESSES
            aliases = lines(work_dir / "aliases.log")
            made = [r["pid"] for r in reports if r["outcome"]]
            assert len(made) == 1, (round_no, reports)
            assert [a.rsplit(" ", 1)[0] for a in aliases] == [f"{anon} prn_a"], round_no
            assert aliases[0].endswith(f" {made[0]}")  # the alias came from the one linker
            on_disk = _on_disk(work_dir)
            assert (on_disk["anon_id"], on_disk["linked_principal_id"]) == (anon, "prn_a")
            assert {(r["anon_id"], r["linked"]) for r in reports} == {(anon, "prn_a")}
            assert _leftovers(work_dir) == []
            # A later command trusts the link: no lookup, no alias.
            later = UsageIdentity(work_dir)
            assert later.get_principal_id(lookup=False) == "prn_a"
            assert later.should_alias() is False
            tally["processes"] += PROCESSES
            tally["aliases"] += len(aliases)
            tally["links stored"] += len(made)
    _report("link", tally)


@pytest.mark.timeout(120)
def test_many_processes_seeing_an_account_switch_rotate_once(
    tmp_path: Path, accounts: FakeCloud
) -> None:
    tally = {"processes": 0, "rotations": 0, "aliases": 0, "rounds": ROUNDS}
    with worker_pool(PROCESSES) as pool:
        for round_no in range(ROUNDS):
            work_dir = tmp_path / f"switch-{round_no}"
            save_credentials(Credentials("key-a", "a@example.com"), work_dir)
            first = UsageIdentity(work_dir)
            first.set_linked_principal_id("prn_a")
            anon_a = first.anon_id
            save_credentials(Credentials("key-b", "b@example.com"), work_dir)  # "B logs in"

            reports = pool.round(work_dir, "link")

            assert [r["principal"] for r in reports] == ["prn_b"] * PROCESSES
            on_disk = _on_disk(work_dir)
            anon_b = on_disk["anon_id"]
            assert anon_b != anon_a
            assert uuid.UUID(anon_b).version == 4
            assert on_disk["linked_principal_id"] == "prn_b"
            # One rotation: every process ended up on the same new anon_id...
            assert {r["anon_id"] for r in reports} == {anon_b}, round_no
            # ...and only that one was aliased, onto B: A's anon_id never was.
            aliases = [a.rsplit(" ", 1)[0] for a in lines(work_dir / "aliases.log")]
            assert aliases == [f"{anon_b} prn_b"], round_no
            assert sum(bool(r["outcome"]) for r in reports) == 1
            tally["processes"] += PROCESSES
            tally["rotations"] += len({r["anon_id"] for r in reports} - {anon_a})
            tally["aliases"] += len(aliases)
    _report("account switch", tally)


@pytest.mark.timeout(120)
def test_many_concurrent_logouts_rotate_once(tmp_path: Path, accounts: FakeCloud) -> None:
    tally = {"processes": 0, "rotations": 0, "logouts as the principal": 0, "rounds": ROUNDS}
    with worker_pool(PROCESSES) as pool:
        for round_no in range(ROUNDS):
            work_dir = tmp_path / f"logout-{round_no}"
            save_credentials(Credentials("key-a", "a@example.com"), work_dir)
            first = UsageIdentity(work_dir)
            first.set_linked_principal_id("prn_a")
            anon_a = first.anon_id
            remove_credentials(work_dir)  # `arcade logout` removes them before tracking

            reports = pool.round(work_dir, "end")

            ended = [r["outcome"] for r in reports if r["outcome"] is not None]
            assert ended == ["prn_a"], (round_no, reports)
            assert len(lines(work_dir / "logouts.log")) == 1
            on_disk = _on_disk(work_dir)
            assert on_disk["linked_principal_id"] is None
            assert on_disk["anon_id"] != anon_a
            assert {(r["anon_id"], r["linked"]) for r in reports} == {(on_disk["anon_id"], None)}
            assert lines(work_dir / "aliases.log") == []
            tally["processes"] += PROCESSES
            tally["rotations"] += len({r["anon_id"] for r in reports} - {anon_a})
            tally["logouts as the principal"] += len(ended)
    _report("logout", tally)


# -- one process: what link_principal and end_session promise --------------------------


class Aliases:
    """An alias callback that records its calls (link_principal swallows what it raises)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, previous_id: str, distinct_id: str) -> bool:
        self.calls.append((previous_id, distinct_id))
        return True


def _linked_to_a(work_dir: Path) -> UsageIdentity:
    save_credentials(Credentials("key-a", "a@example.com"))
    identity = UsageIdentity()
    identity.set_linked_principal_id("prn_a")
    return identity


def test_link_stores_the_link_even_when_the_alias_fails(work_dir: Path) -> None:
    calls: list[tuple[str, str]] = []

    def refused(previous_id: str, distinct_id: str) -> bool:
        calls.append((previous_id, distinct_id))
        return False

    def broken(previous_id: str, distinct_id: str) -> bool:
        calls.append((previous_id, distinct_id))
        raise RuntimeError("PostHog is down")

    save_credentials(Credentials("key-a"))
    identity = UsageIdentity()
    anon = identity.anon_id
    assert identity.link_principal("prn_a", refused, timeout=5) is True
    assert calls == [(anon, "prn_a")]
    assert _on_disk(work_dir)["linked_principal_id"] == "prn_a"
    # Never twice for the same pair, in this process or the next.
    assert identity.link_principal("prn_a", refused, timeout=5) is False
    assert UsageIdentity().link_principal("prn_a", refused, timeout=5) is False
    assert len(calls) == 1

    # An alias that raises: B's link is stored all the same, after a rotation.
    save_credentials(Credentials("key-b"))
    assert UsageIdentity().link_principal("prn_b", broken, timeout=5) is True
    on_disk = _on_disk(work_dir)
    assert on_disk["linked_principal_id"] == "prn_b"
    assert calls[1] == (on_disk["anon_id"], "prn_b")
    assert on_disk["anon_id"] != anon


def test_ctrl_c_during_the_alias_still_stores_the_link(work_dir: Path) -> None:
    def interrupted(previous_id: str, distinct_id: str) -> bool:
        raise KeyboardInterrupt

    save_credentials(Credentials("key-a"))
    with pytest.raises(KeyboardInterrupt):
        UsageIdentity().link_principal("prn_a", interrupted, timeout=5)
    assert _on_disk(work_dir)["linked_principal_id"] == "prn_a"
    # The lock was released: the next transition does not wait for it.
    assert UsageIdentity().end_session(timeout=0.5) == "prn_a"


def test_linking_the_same_principal_with_new_credentials_refreshes_the_fingerprint(
    work_dir: Path, cloud: FakeCloud
) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    cloud.add_account("key-a2", "prn_a", "a@example.com")
    _linked_to_a(work_dir)
    save_credentials(Credentials("key-a2", "a@example.com"))  # a second key, same account

    identity = UsageIdentity(lookup_timeout=LOOKUP_TIMEOUT)
    assert identity.get_principal_id(lookup=False) is None  # not the credentials it was linked with
    assert identity.get_principal_id() == "prn_a"
    assert cloud.validations == 1
    aliases = Aliases()
    assert identity.link_principal("prn_a", aliases, timeout=5) is False
    assert aliases.calls == []

    # From now on the link is trusted again without a lookup.
    assert UsageIdentity().get_principal_id(lookup=False) == "prn_a"
    assert UsageIdentity().should_alias() is False
    assert cloud.validations == 1


def test_logout_while_anonymous_keeps_anon_id(work_dir: Path) -> None:
    identity = UsageIdentity()
    anon = identity.anon_id
    assert identity.end_session() is None
    assert UsageIdentity().anon_id == anon == _on_disk(work_dir)["anon_id"]


def test_logout_ends_the_linked_principal_once(work_dir: Path) -> None:
    identity = _linked_to_a(work_dir)
    anon = identity.anon_id
    remove_credentials()
    assert identity.end_session() == "prn_a"
    assert identity.anon_id != anon
    assert identity.linked_principal_id is None
    assert identity.get_distinct_id() == identity.anon_id
    again = UsageIdentity()
    assert again.end_session() is None
    assert again.anon_id == identity.anon_id


class Clock:
    """A wall clock a test moves by hand (the identity dates what it writes down by it)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_credentials_deleted_by_hand_end_the_session_once_they_stay_gone(
    work_dir: Path,
) -> None:
    """Not by a logout: the identity stays linked to an account no file names any more.
    It is ended as a logout would end it, once, but only when the file has been gone for
    CREDENTIALS_GONE_GRACE: a real logout, which deletes the file first and ends the
    session a moment later, must still be the one to end it."""
    clock = Clock()
    linked = _linked_to_a(work_dir)
    anon = linked.anon_id
    # While the file is there nothing is written down, and no lock is taken for it.
    with lock_held(work_dir / "usage.json.lock"):
        assert UsageIdentity(clock=clock).end_session_if_credentials_gone() is False
    assert "credentials_gone_since" not in _on_disk(work_dir)

    remove_credentials()  # by hand: `rm ~/.arcade/credentials.yaml`
    assert UsageIdentity(clock=clock).end_session_if_credentials_gone() is False
    assert _on_disk(work_dir)["credentials_gone_since"] == clock.now  # the first look
    clock.now += CREDENTIALS_GONE_GRACE - 0.5
    assert UsageIdentity(clock=clock).end_session_if_credentials_gone() is False
    assert _on_disk(work_dir)["linked_principal_id"] == "prn_a"

    clock.now += 0.5
    ending = UsageIdentity(clock=clock)
    assert ending.end_session_if_credentials_gone() is True
    on_disk = _on_disk(work_dir)
    assert on_disk["linked_principal_id"] is None
    assert on_disk["anon_id"] not in (anon, None)
    assert "credentials_gone_since" not in on_disk
    assert ending.get_distinct_id() == on_disk["anon_id"]
    # Once: every other process finds an anonymous identity and leaves it alone.
    clock.now += 60
    assert UsageIdentity(clock=clock).end_session_if_credentials_gone() is False
    assert _on_disk(work_dir) == on_disk


def test_credentials_back_as_they_were_keep_the_link_and_the_next_deletion_waits_again(
    work_dir: Path,
) -> None:
    """Deleted, then restored by hand with the same bytes (or saved again by a login as
    the same account): the link stands, trusted by the file's hash with no lookup. The
    first look that trusts it forgets when the file was found gone: left behind, that
    date would let a later deletion (a real logout's) end the session at once, before
    the logout ends it itself as the account."""
    clock = Clock()
    _linked_to_a(work_dir)
    saved = (work_dir / "credentials.yaml").read_bytes()
    remove_credentials()
    assert UsageIdentity(clock=clock).end_session_if_credentials_gone() is False
    assert "credentials_gone_since" in _on_disk(work_dir)

    (work_dir / "credentials.yaml").write_bytes(saved)
    clock.now += 3600
    assert UsageIdentity(clock=clock).end_session_if_credentials_gone() is False
    assert UsageIdentity().get_principal_id(lookup=False) == "prn_a"  # a command's look
    assert "credentials_gone_since" not in _on_disk(work_dir)

    remove_credentials()  # `arcade logout`, whose own session end is a moment away
    assert UsageIdentity(clock=clock).end_session_if_credentials_gone() is False
    assert _on_disk(work_dir)["linked_principal_id"] == "prn_a"
    assert UsageIdentity().end_session() == "prn_a"  # the logout ends it, as the account


@pytest.mark.parametrize("what", ["directory", "fifo", "link to nothing"])
def test_anything_but_a_file_at_the_credentials_counts_as_gone(work_dir: Path, what: str) -> None:
    """A directory (what a bind mount of a missing file leaves), a FIFO or a dangling
    link holds no credentials: the session ends after the grace, as for a deletion."""
    clock = Clock()
    _linked_to_a(work_dir)
    path = work_dir / "credentials.yaml"
    remove_credentials()
    if what == "directory":
        path.mkdir()
    elif what == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(work_dir / "nowhere.yaml")
    assert UsageIdentity(clock=clock).end_session_if_credentials_gone() is False
    clock.now += CREDENTIALS_GONE_GRACE
    assert UsageIdentity(clock=clock).end_session_if_credentials_gone() is True
    assert _on_disk(work_dir)["linked_principal_id"] is None


@pytest.mark.parametrize(
    "written", ["the future", "not a date", "true", "nan", "an integer no float holds"]
)
def test_a_gap_dated_in_the_future_or_not_at_all_starts_the_wait_again(
    work_dir: Path, written: str
) -> None:
    """The clock went back (or the date is not one): the wait starts over from now,
    never ending the session early."""
    clock = Clock()
    _linked_to_a(work_dir)
    remove_credentials()
    data = _on_disk(work_dir)
    data["credentials_gone_since"] = {
        "the future": clock.now + 3600,
        "not a date": "yesterday",
        "true": True,
        "nan": float("nan"),
        "an integer no float holds": 10**400,
    }[written]
    (work_dir / "usage.json").write_text(json.dumps(data))
    assert UsageIdentity(clock=clock).end_session_if_credentials_gone() is False
    assert _on_disk(work_dir)["credentials_gone_since"] == clock.now
    clock.now += CREDENTIALS_GONE_GRACE
    assert UsageIdentity(clock=clock).end_session_if_credentials_gone() is True


def test_a_held_lock_leaves_the_gap_to_the_next_look(work_dir: Path) -> None:
    """No waiting by default: a tool call or a command's end never waits for the lock."""
    _linked_to_a(work_dir)
    remove_credentials()
    with lock_held(work_dir / "usage.json.lock"):
        start = time.monotonic()
        with pytest.raises(IdentityBusyError):
            UsageIdentity().end_session_if_credentials_gone()
        assert time.monotonic() - start < 1.0
    assert "credentials_gone_since" not in _on_disk(work_dir)


@pytest.mark.timeout(60)
def test_a_held_lock_makes_the_transition_give_up_in_time(arcade_dir: Path) -> None:
    identity = _linked_to_a(arcade_dir)
    with lock_held(arcade_dir / "usage.json.lock"):
        other = UsageIdentity()
        start = time.monotonic()
        aliases = Aliases()
        with pytest.raises(IdentityBusyError) as caught:
            other.link_principal("prn_b", aliases, timeout=0.3)
        assert aliases.calls == []
        assert time.monotonic() - start < 2.0
        assert isinstance(caught.value, IdentityUnavailableError)
        with pytest.raises(IdentityBusyError):
            other.end_session(timeout=0.1)
        # Reads never wait for the lock.
        assert UsageIdentity().get_principal_id(lookup=False) == "prn_a"
    assert _on_disk(arcade_dir)["linked_principal_id"] == "prn_a"
    assert identity.end_session() == "prn_a"


# -- a long-lived process sees what others changed --------------------------------------


def test_revalidate_sees_a_logout_and_a_login_made_elsewhere(
    work_dir: Path, cloud: FakeCloud
) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    cloud.add_account("key-b", "prn_b", "b@example.com")
    _linked_to_a(work_dir)
    server = UsageIdentity(lookup_timeout=LOOKUP_TIMEOUT)  # e.g. an MCP server, up for hours
    assert server.get_distinct_id() == "prn_a"

    server.revalidate()  # nothing changed: same answer
    assert server.get_distinct_id() == "prn_a"

    remove_credentials()  # `arcade logout` elsewhere
    assert UsageIdentity().end_session() == "prn_a"
    server.revalidate()
    assert server.get_principal_id() is None
    assert server.get_distinct_id() == _on_disk(work_dir)["anon_id"]

    save_credentials(Credentials("key-b", "b@example.com"))  # `arcade login` as B elsewhere
    server.revalidate()
    assert server.get_principal_id() == "prn_b"
    assert server.should_alias() is True


def test_revalidate_sees_new_credentials_even_when_usage_json_is_unchanged(
    work_dir: Path, cloud: FakeCloud
) -> None:
    cloud.add_account("key-b", "prn_b", "b@example.com")
    server = UsageIdentity(lookup_timeout=LOOKUP_TIMEOUT)
    assert server.get_principal_id() is None  # no credentials yet
    save_credentials(Credentials("key-b"))
    assert server.get_principal_id() is None  # cached until revalidated
    server.revalidate()
    assert server.get_principal_id() == "prn_b"
