"""Both libraries' public names: one table each, loaded lazily from the module that holds them."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import arcade_identity
import arcade_usage

PACKAGES = [arcade_identity, arcade_usage]
PUBLIC_NAMES = [(package, name) for package in PACKAGES for name in package.__all__]


def _type_checking_imports(package: ModuleType) -> set[str]:
    """Names the package's `__init__.py` imports under `if TYPE_CHECKING:` (for type checkers)."""
    tree = ast.parse(Path(inspect.getfile(package)).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                names.update(alias.asname or alias.name for alias in stmt.names)
    return names


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_all_the_name_table_and_the_type_checking_imports_agree(package: ModuleType) -> None:
    table = package._NAMES
    assert sorted(package.__all__) == sorted(table)
    assert len(set(package.__all__)) == len(package.__all__)
    assert _type_checking_imports(package) == set(table)


@pytest.mark.parametrize(
    ("package", "name"), PUBLIC_NAMES, ids=[f"{p.__name__}.{n}" for p, n in PUBLIC_NAMES]
)
def test_every_public_name_resolves_to_its_home(package: ModuleType, name: str) -> None:
    value = getattr(package, name)
    home = importlib.import_module(f"{package.__name__}.{package._NAMES[name]}")
    assert getattr(home, name) is value
    assert name in dir(package)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_an_unknown_name_is_an_attribute_error(package: ModuleType) -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = package.nope
