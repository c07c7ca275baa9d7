"""The public face of arcade_identity: one name table, lazy loading, errors by type."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from arcade_identity import (
    ArcadeIdentityError,
    HomeNotFoundError,
    IdentityBusyError,
    IdentityUnavailableError,
    InvalidApiKeyError,
    PrincipalLookupError,
    exceptions,
    lookup_principal,
)
from servers import FakeCloud

LOADED = """\
import json, sys
{statement}
print(json.dumps(sorted(m for m in sys.modules if m.startswith("arcade_identity"))))
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("import arcade_identity", ["arcade_identity"]),
        # What the detached sender needs to file an event.
        (
            "from arcade_identity import write_atomic, ensure_private_dir",
            ["arcade_identity", "arcade_identity._files"],
        ),
    ],
    ids=["package", "sender"],
)
def test_importing_loads_only_what_is_asked_for(statement: str, expected: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOADED.format(statement=statement)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(result.stdout) == expected


def test_every_error_has_the_one_root() -> None:
    errors = [
        value
        for value in vars(exceptions).values()
        if isinstance(value, type) and issubclass(value, BaseException)
    ]
    assert len(errors) >= 7
    assert all(issubclass(error, ArcadeIdentityError) for error in errors)
    # File trouble is an OSError; an answer from Arcade Cloud is not.
    assert issubclass(IdentityUnavailableError, OSError)
    assert issubclass(HomeNotFoundError, IdentityUnavailableError)
    assert issubclass(IdentityBusyError, IdentityUnavailableError)
    assert not issubclass(InvalidApiKeyError, OSError)
    assert not issubclass(PrincipalLookupError, OSError)


def test_a_broad_except_oserror_does_not_swallow_a_bad_key(cloud: FakeCloud) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    caught: list[BaseException] = []
    try:
        try:
            lookup_principal("key-revoked", cloud.url, timeout=30)
        except OSError:  # what code guarding file access writes
            pytest.fail("a refused key was taken for a file error")
    except InvalidApiKeyError as exc:
        caught.append(exc)
    assert len(caught) == 1
