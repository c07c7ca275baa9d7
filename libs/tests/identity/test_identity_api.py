"""The public face of arcade_identity: one name table, lazy loading, errors by type."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import arcade_identity
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


def _type_checking_imports() -> set[str]:
    """Names `arcade_identity/__init__.py` imports under `if TYPE_CHECKING:`."""
    tree = ast.parse(Path(inspect.getfile(arcade_identity)).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                names.update(alias.asname or alias.name for alias in stmt.names)
    return names


def test_all_the_name_table_and_the_type_checking_imports_agree() -> None:
    table = arcade_identity._NAMES
    assert sorted(arcade_identity.__all__, key=str) == sorted(table, key=str)
    assert len(set(arcade_identity.__all__)) == len(arcade_identity.__all__)
    assert _type_checking_imports() == set(table)


@pytest.mark.parametrize("name", arcade_identity.__all__)
def test_every_public_name_resolves_to_its_home(name: str) -> None:
    value = getattr(arcade_identity, name)
    home = importlib.import_module(f"arcade_identity.{arcade_identity._NAMES[name]}")
    assert getattr(home, name) is value
    assert name in dir(arcade_identity)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = arcade_identity.nope


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
