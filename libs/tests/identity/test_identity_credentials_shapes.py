"""Every shape of `credentials.yaml` Arcade's CLIs write, and which context is in force.

The files a real arcade-core writes are tested end to end in `cli/test_cli_arcade_core.py`;
here, the shapes it does not write any more (the pre-context `api.key`, a flat copy
alone) and the corner cases of choosing a context, written out by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arcade_identity import LookupNotSentError, UsageIdentity, lookup_principal, read_credentials
from helpers import Stopwatch, inconclusive, starved
from servers import FakeCloud

TWO_CONTEXTS = """\
cloud:
  active_context: {active}
  contexts:
    work:
      api_key: key-work
      user: {{email: w@x.io}}
      context: {{org_id: org_w, org_name: W, project_id: proj_w, project_name: P}}
    home:
      auth: {{access_token: tok-home, refresh_token: r, expires_at: '2999-01-01T00:00:00'}}
      user: {{email: h@x.io, account_id: acc_home}}
  api_key: key-flat
  user: {{email: flat@x.io}}
  api: {{key: key-old}}
"""


def _write(arcade_dir: Path, text: str) -> None:
    arcade_dir.mkdir(mode=0o700, exist_ok=True)
    (arcade_dir / "credentials.yaml").write_text(text)


@pytest.mark.parametrize(
    ("text", "chosen", "expected"),
    [
        # The pre-context shape of arcade-core before 4.x (and of our earlier login).
        ("cloud:\n  api: {key: key-old}\n  user: {email: o@x.io}\n", None, ("key-old", None)),
        # The flat fields alone (a file an older arcade-core rewrote).
        ("cloud:\n  api_key: key-flat\n", None, ("key-flat", None)),
        # The active context wins over the flat copy and the old key.
        (TWO_CONTEXTS.format(active="work"), None, ("key-work", "work")),
        (TWO_CONTEXTS.format(active="home"), None, ("tok-home", "home")),
        # ARCADE_CONTEXT wins over the file's choice, for this process.
        (TWO_CONTEXTS.format(active="work"), "home", ("tok-home", "home")),
        # No active context among several: the flat fields.
        (TWO_CONTEXTS.format(active="gone"), None, ("key-flat", None)),
        # The only context, even with no active_context.
        ("cloud:\n  contexts:\n    solo: {api_key: key-solo}\n", None, ("key-solo", "solo")),
        # A context without a credential falls back to the pre-context key.
        (
            "cloud:\n  contexts:\n    c: {user: {email: e}}\n  api: {key: key-old}\n",
            None,
            ("key-old", "c"),
        ),
    ],
)
def test_the_context_in_force_and_its_credential(
    arcade_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    chosen: str | None,
    expected: tuple[str, str | None],
) -> None:
    if chosen is not None:
        monkeypatch.setenv("ARCADE_CONTEXT", chosen)
    _write(arcade_dir, text)

    credentials = read_credentials()

    assert credentials is not None
    assert (credentials.secret, credentials.context) == expected


def test_arcade_context_naming_no_saved_context_means_no_credentials(
    arcade_dir: Path, monkeypatch: pytest.MonkeyPatch, cloud: FakeCloud
) -> None:
    monkeypatch.setenv("ARCADE_CONTEXT", "nowhere")
    _write(arcade_dir, TWO_CONTEXTS.format(active="work"))

    assert read_credentials() is None
    assert UsageIdentity().get_principal_id() is None
    assert cloud.validations + cloud.whoamis == 0


def test_the_org_and_project_of_the_context_in_force(arcade_dir: Path) -> None:
    _write(arcade_dir, TWO_CONTEXTS.format(active="work"))
    credentials = read_credentials()
    assert credentials is not None
    assert credentials.context_properties() == {"org_id": "org_w", "project_id": "proj_w"}


# -- only Cloud's failures are remembered -------------------------------------------------


def test_a_lookup_out_of_time_before_it_was_sent_is_not_remembered(
    arcade_dir: Path, cloud: FakeCloud
) -> None:
    cloud.add_account("key-work", "prn_w", "w@x.io")
    _write(arcade_dir, TWO_CONTEXTS.format(active="work"))

    # A starved process: its budget is gone before the request could go out.
    starved = UsageIdentity(lookup_timeout=0)
    assert starved.get_principal_id() is None
    assert cloud.validations == 0
    assert not (arcade_dir / "principal_lookup.json").exists()

    from arcade_identity import _lookup

    _lookup._answers.clear()  # the next command is another process
    assert UsageIdentity().get_principal_id() == "prn_w"
    assert cloud.validations == 1


@pytest.mark.may_be_inconclusive
def test_a_lookup_cloud_did_not_answer_is_remembered(arcade_dir: Path, cloud: FakeCloud) -> None:
    cloud.add_account("key-work", "prn_w", "w@x.io")
    cloud.mode = "hang"
    _write(arcade_dir, TWO_CONTEXTS.format(active="work"))

    import httpx  # loaded already, as in a process that has made a request before

    assert httpx is not None
    with Stopwatch() as watch:
        assert UsageIdentity(lookup_timeout=1.5).get_principal_id() is None

    assert cloud.validations == 1
    if not (arcade_dir / "principal_lookup.json").exists() and (why := starved(watch)):
        # The request went out with less than half the budget left: not Cloud's failure.
        inconclusive(f"the lookup's request went out too late to be answered, at {why}")
    assert (arcade_dir / "principal_lookup.json").exists()


def test_no_time_left_is_its_own_error(cloud: FakeCloud) -> None:
    with pytest.raises(LookupNotSentError):
        lookup_principal("key-work", cloud.url, timeout=0)
    assert cloud.validations == 0
