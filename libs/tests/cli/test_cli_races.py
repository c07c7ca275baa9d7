"""Twelve real `arcade` processes started at once make each identity transition once.

A user's shell, a script or several terminals can run `arcade` at the same
moment just after a login, an account switch or during a logout. Each test
here runs ROUNDS rounds; each round gets its own `.arcade` and its own
FakePostHog, prepares the machine with the real CLI (or a credentials file
written by hand, as another tool would), releases PROCESSES `arcade` processes
together (cli/starting_gate.py), waits until every sender they started has
exited, and then counts what PostHog received. The figures of every round are
printed at the end of each test (`pytest -s` shows them).

Only one race runs at a time on the machine: twenty-four processes on two cores
can starve each other past the 2 s budget of the principal lookup, which then
fails for the whole round by design (anonymous events, the failure remembered
for five minutes). The tests that race form one xdist group, which
`--dist loadgroup` (pyproject's addopts) runs on one worker, one after another,
while the other workers go on with the rest of the suite (a lock shared by the
workers did the same, but left the waiting workers idle). Such a round is told
apart and checked for what must hold in it; a test whose every round fell back
that way showed nothing about the transition, and is skipped as inconclusive
(counted by conftest.py) rather than passed.

The number of rounds is `ARCADE_TEST_ROUNDS` (helpers.rounds), one by default; a race
none of whose rounds made its transition runs up to SPARE_ROUNDS more.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from arcade_identity import Credentials, save_credentials
from cli.accounts import Account
from cli.starting_gate import Finished, run_together
from helpers import inconclusive, lock_held, rounds, run_arcade, sender_pids, wait_until
from servers import FakeCloud, FakePostHog

PROCESSES = 12
ROUNDS = rounds(1)
SPARE_ROUNDS = 2
"""Rounds a race adds when none of its ROUNDS made the transition (every lookup ran out
of its budget on a busy machine), before it calls itself inconclusive."""
NO_LOOKUP_IN_TIME = (
    "in every round every principal lookup ran out of its 2 s budget (the machine is "
    "too busy for twelve at once), so no transition was made to count"
)

NOT_SENT = ("could not be sent within", "went out too late to be answered")
"""What a login says when its own process, starved of CPU, asked Arcade Cloud too late."""

pytestmark = pytest.mark.timeout(240)

ONE_RACE_AT_A_TIME = pytest.mark.xdist_group("arcade-cli-races")
"""The tests that race PROCESSES processes: one worker runs them, one after another."""


@dataclass
class Machine:
    """One round's `ARCADE_WORK_DIR`, the PostHog its events go to, and the environment."""

    work_dir: Path
    posthog: FakePostHog
    env: dict[str, str]

    @property
    def arcade_dir(self) -> Path:
        return self.work_dir

    def arcade(self, *args: str) -> None:
        """Run one `arcade` command to prepare the round; it must succeed. A login whose
        request the machine was too busy to send in time (not Cloud's failure, and not
        what the round is about: the races beside it starve it) is run again."""
        for _ in range(3):
            result = run_arcade(*args, env=self.env)
            if result.returncode == 0 or not any(s in result.stderr for s in NOT_SENT):
                break
        assert result.returncode == 0, (args, result.stdout, result.stderr)

    def race(self, *args: str, env: dict[str, str] | None = None) -> list[Finished]:
        """`arcade ARGS` PROCESSES times, released together (no other race meanwhile)."""
        return run_together([args] * PROCESSES, {**self.env, **(env or {})})

    def settle(self) -> None:
        """Wait until every sender working for this round has exited: PostHog has it all."""
        wait_until(lambda: not sender_pids(self.work_dir), timeout=15)

    def on_disk(self) -> tuple[str, str | None]:
        data = json.loads((self.arcade_dir / "usage.json").read_text())
        return data["anon_id"], data["linked_principal_id"]

    def lookup_failed(self) -> bool:
        """Whether a principal lookup failed (and is remembered) in this round."""
        return (self.arcade_dir / "principal_lookup.json").exists()

    def events_of(self, command_name: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.posthog.command_events()
            if m["properties"]["command_name"] == command_name
        ]

    def seen(self) -> str:
        """What PostHog received and what the round left on disk, for a failure's message."""
        got = [(msg["event"], msg["distinct_id"]) for msg in self.posthog.events()]
        outbox = self.arcade_dir / "usage_outbox"
        waiting = sorted(p.name for p in outbox.iterdir()) if outbox.is_dir() else []
        return (
            f"PostHog got {got}; usage.json {self.on_disk()}; "
            f"lookup failed: {self.lookup_failed()}; outbox holds {waiting}"
        )

    def log_in_by_hand(self, account: Account) -> None:
        """Credentials written as another tool would, without `arcade login`."""
        save_credentials(Credentials(account.key, account.email), self.work_dir)


Machines = Callable[[str], AbstractContextManager[Machine]]


@pytest.fixture
def machines(tmp_path: Path) -> Machines:
    """Makes a fresh `.arcade` and FakePostHog per round; no sender of one is left running."""

    @contextmanager
    def machine(name: str) -> Iterator[Machine]:
        work_dir = tmp_path / name
        work_dir.mkdir()
        posthog = FakePostHog()
        posthog.start()
        env = {
            **os.environ,
            "ARCADE_WORK_DIR": str(work_dir),
            "ARCADE_USAGE_POSTHOG_HOST": posthog.url,
        }
        try:
            yield Machine(work_dir, posthog, env)
        finally:
            try:
                wait_until(lambda: not sender_pids(work_dir), timeout=15)
            finally:
                posthog.stop()

    return machine


def assert_quiet_successes(results: list[Finished]) -> None:
    """Every process exited 0 and wrote nothing on stderr (the notice was spent already)."""
    assert [(r.returncode, r.stderr) for r in results] == [(0, "")] * len(results), results


def assert_delivered_once(events: list[dict[str, Any]]) -> None:
    """PROCESSES events, none of them twice."""
    assert len(events) == PROCESSES, events
    assert len({e["uuid"] for e in events}) == PROCESSES


def anonymous_flags_right(events: list[dict[str, Any]], anonymous_ids: set[str]) -> bool:
    """`$process_person_profile: false` on exactly the events sent as an anonymous id."""
    return all(
        (e["properties"].get("$process_person_profile") is False)
        == (e["distinct_id"] in anonymous_ids)
        for e in events
    )


def report(name: str, rounds: list[dict[str, int]]) -> None:
    totals: Counter[str] = Counter()
    for figures in rounds:
        totals.update(figures)
    print(f"\n{name}: {len(rounds)} rounds × {PROCESSES} processes: {dict(totals)}")
    for number, figures in enumerate(rounds):
        print(f"  round {number}: {figures}")


@ONE_RACE_AT_A_TIME
@pytest.mark.may_be_inconclusive
def test_commands_finding_a_hand_written_login_together_alias_once(
    machines: Machines, account_a: Account
) -> None:
    rounds: list[dict[str, int]] = []
    principal = account_a.principal
    for round_no in range(ROUNDS + SPARE_ROUNDS):
        if round_no >= ROUNDS and any(figures["aliases"] for figures in rounds):
            break
        with machines(f"link-{round_no}") as m:
            m.arcade("usage", "status")  # the machine's anonymous history
            wait_until(lambda: m.events_of("usage.status"))
            anon, _ = m.on_disk()
            m.log_in_by_hand(account_a)

            results = m.race("usage", "status")

            assert_quiet_successes(results)
            for result in results:
                assert f"Anonymous id:     {anon}\n" in result.stdout
            m.settle()
            events = m.events_of("usage.status")[1:]
            assert_delivered_once(events)
            senders = Counter(e["distinct_id"] for e in events)
            assert set(senders) <= {anon, principal}, (round_no, m.seen())
            assert anonymous_flags_right(events, {anon})
            if m.posthog.aliases() == [] and m.on_disk()[1] is None:
                # No process had its answer from Arcade Cloud within the budget: the
                # round stays anonymous, and a later command links (after five minutes
                # if Cloud failed; at once if no request could even be sent in time,
                # which is not remembered).
                assert m.on_disk() == (anon, None), m.seen()
                assert senders == {anon: PROCESSES}
            else:
                assert m.posthog.aliases() == [(anon, principal)], (round_no, m.seen())
                assert m.on_disk() == (anon, principal)
                # Nothing went out as the principal before the alias, so PostHog merged
                # the anonymous history into the account instead of refusing.
                messages = m.posthog.events()
                alias_at = [msg["event"] for msg in messages].index("$create_alias")
                assert all(
                    at > alias_at
                    for at, msg in enumerate(messages)
                    if msg["distinct_id"] == principal
                ), m.seen()
                assert m.posthog.refused_aliases == []
                assert m.posthog.same_person(anon, principal)
            rounds.append(
                {
                    "aliases": len(m.posthog.aliases()),
                    "events": len(events),
                    "as principal": senders[principal],
                    "anonymous": senders[anon],
                    "lookup budget ran out": int(m.lookup_failed()),
                }
            )
    report("hand-written login", rounds)
    if not any(figures["aliases"] for figures in rounds):
        inconclusive(NO_LOOKUP_IN_TIME)


CPU_HOG = "import sys\nsys.stdout.write('hot\\n'); sys.stdout.flush()\nwhile True: pass"


@contextmanager
def cpu_hogs(count: int) -> Iterator[None]:
    """`count` processes spinning at normal priority for the block: a loaded machine."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", CPU_HOG], stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    try:
        for hog in hogs:
            assert hog.stdout is not None
            assert hog.stdout.readline() == "hot\n"
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()
            if hog.stdout is not None:
                hog.stdout.close()


@ONE_RACE_AT_A_TIME
def test_a_starved_race_never_leaves_a_hand_written_login_anonymous(
    machines: Machines, account_a: Account
) -> None:
    """Twelve commands on a loaded machine may all run out of their lookup budget; that
    is their process's lack of time, not Cloud's failure, so it is not remembered and
    the commands after them are the principal's, with exactly one alias."""
    principal = account_a.principal
    for round_no in range(ROUNDS):
        with machines(f"starved-{round_no}") as m:
            m.arcade("usage", "status")  # the machine's anonymous history
            wait_until(lambda: m.events_of("usage.status"))
            anon, _ = m.on_disk()
            m.log_in_by_hand(account_a)

            with cpu_hogs(2):
                assert_quiet_successes(m.race("usage", "status"))
                # The commands that follow, one at a time, still beside the two hogs: the
                # first whose lookup gets through links, and every one after is the
                # principal's.
                later = 0
                while m.on_disk()[1] is None and later < 3:
                    m.arcade("whoami")
                    later += 1
                m.arcade("usage", "status")
            m.settle()

            assert not m.lookup_failed(), m.seen()  # Cloud never failed: nothing to remember
            assert m.on_disk() == (anon, principal), (round_no, m.seen())
            assert m.posthog.aliases() == [(anon, principal)], (round_no, m.seen())
            last = m.events_of("usage.status")[-1]
            assert last["distinct_id"] == principal, (round_no, m.seen())


@ONE_RACE_AT_A_TIME
@pytest.mark.may_be_inconclusive
def test_commands_seeing_an_account_switch_together_rotate_once(
    machines: Machines, account_a: Account, account_b: Account
) -> None:
    rounds: list[dict[str, int]] = []
    a, b = account_a.principal, account_b.principal
    for round_no in range(ROUNDS + SPARE_ROUNDS):
        if round_no >= ROUNDS and any(figures["switched"] for figures in rounds):
            break
        with machines(f"switch-{round_no}") as m:
            m.arcade("login", "--api-key", account_a.key)
            wait_until(lambda: m.events_of("login"))
            anon_a, linked = m.on_disk()
            assert linked == a
            m.log_in_by_hand(account_b)  # B's key replaces A's

            results = m.race("usage", "status")

            assert_quiet_successes(results)
            m.settle()
            anon_now, linked = m.on_disk()
            events = m.events_of("usage.status")
            assert_delivered_once(events)
            senders = Counter(e["distinct_id"] for e in events)
            switched = linked == b
            # At most one rotation, and only together with B's link; one alias, from
            # the new anonymous id onto B; A's anon_id is never aliased onto B.
            assert (anon_now != anon_a) == switched, m.seen()
            assert linked in (a, b)
            new_aliases = m.posthog.aliases()[1:]
            assert new_aliases == ([(anon_now, b)] if switched else []), (round_no, m.seen())
            # A process that could not see the switch through in time sends under a
            # one-off id of nobody's: anonymous, used once, in no alias.
            one_off = set(senders) - {b, anon_now, anon_a}
            aliased = {name for pair in m.posthog.aliases() for name in pair}
            assert all(senders[s] == 1 for s in one_off), (round_no, m.seen())
            assert not one_off & aliased, (round_no, m.seen())
            assert anonymous_flags_right(events, {anon_now, anon_a, *one_off})
            assert m.posthog.refused_aliases == []
            assert not m.posthog.same_person(a, b)
            rounds.append(
                {
                    "switched": int(switched),
                    "aliases": len(new_aliases),
                    "rotations": int(anon_now != anon_a),
                    "as principal B": senders[b],
                    "as the new anon_id": senders[anon_now] if switched else 0,
                    "as A's anon_id": senders[anon_a],
                    "as a one-off id": len(one_off),
                    "lookup budget ran out": int(m.lookup_failed()),
                }
            )
    report("account switch", rounds)
    if not any(figures["switched"] for figures in rounds):
        inconclusive(NO_LOOKUP_IN_TIME)
    # Every event is B's or the new anonymous id's: none is sent as A's old
    # anonymous id, which PostHog files under A.
    assert [figures["as A's anon_id"] for figures in rounds] == [0] * len(rounds)


@pytest.mark.parametrize("obstacle", ["identity lock held", "Arcade Cloud down"])
def test_a_switch_that_cannot_be_made_in_time_never_files_b_under_a(
    obstacle: str,
    machines: Machines,
    cloud: FakeCloud,
    account_a: Account,
    account_b: Account,
) -> None:
    """One command after B's key replaced A's, with the switch out of reach for 2 s."""
    with machines("switch-blocked") as m:
        m.arcade("login", "--api-key", account_a.key)
        wait_until(lambda: m.events_of("login"))
        anon_a, _ = m.on_disk()
        m.log_in_by_hand(account_b)
        with contextlib.ExitStack() as stack:
            if obstacle == "Arcade Cloud down":
                cloud.mode = "error"
            else:
                stack.enter_context(lock_held(m.arcade_dir / "usage.json.lock"))
            m.arcade("usage", "status")
        event = wait_until(lambda: m.events_of("usage.status"))[0]
        m.settle()
        assert m.on_disk() == (anon_a, account_a.principal)  # nothing switched
        assert event["distinct_id"] != anon_a, m.seen()
        assert not m.posthog.same_person(event["distinct_id"], account_a.principal)


@ONE_RACE_AT_A_TIME
def test_logouts_run_together_rotate_once_and_send_one_logout_as_the_account(
    machines: Machines, account_a: Account
) -> None:
    rounds = []
    for round_no in range(ROUNDS):
        with machines(f"logout-{round_no}") as m:
            m.arcade("login", "--api-key", account_a.key)
            wait_until(lambda: m.events_of("login"))
            anon_a, _ = m.on_disk()

            results = m.race("logout")

            assert_quiet_successes(results)
            assert sorted(r.stdout for r in results) == ["Logged out.\n"] + ["Not logged in.\n"] * (
                PROCESSES - 1
            )
            assert not (m.arcade_dir / "credentials.yaml").exists()
            m.settle()
            anon_new, linked = m.on_disk()
            assert linked is None
            assert anon_new != anon_a
            events = m.events_of("logout")
            assert_delivered_once(events)
            senders = Counter(e["distinct_id"] for e in events)
            # One logout belongs to the account; the others found the identity already
            # rotated, and are anonymous logouts from the one new anonymous id.
            assert senders == {account_a.principal: 1, anon_new: PROCESSES - 1}, (
                round_no,
                m.seen(),
            )
            assert anonymous_flags_right(events, {anon_new})
            assert m.posthog.aliases() == [(anon_a, account_a.principal)]
            assert not m.posthog.same_person(anon_new, account_a.principal)
            rounds.append(
                {
                    "rotations": len(set(senders) - {account_a.principal}),
                    "logouts as principal": senders[account_a.principal],
                    "anonymous logouts": senders[anon_new],
                }
            )
    report("logout", rounds)
