"""The identity behind Arcade's CLI usage analytics.

`usage.json` keeps an anonymous id and, after login, the principal it is linked
to; `credentials.yaml` keeps the Arcade Cloud API key. Heavy modules (filelock,
httpx, yaml) load only when a write, a lookup or a YAML parse needs them.

The names below load on first use, so that the detached sender, which needs
only `write_atomic`, does not import the rest.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing

if TYPE_CHECKING:
    from arcade_identity._credentials import (
        Credentials,
        cloud_base_url,
        credentials_path,
        read_credentials,
        remove_credentials,
        save_credentials,
    )
    from arcade_identity._files import write_atomic
    from arcade_identity._identity import UsageIdentity
    from arcade_identity._lookup import Principal, lookup_principal
    from arcade_identity._paths import DEFAULT_CLOUD_URL, arcade_dir
    from arcade_identity.exceptions import (
        CredentialsError,
        IdentityUnavailableError,
        InvalidApiKeyError,
        PrincipalLookupError,
    )

_HOMES = {
    "Credentials": "_credentials",
    "CredentialsError": "exceptions",
    "DEFAULT_CLOUD_URL": "_paths",
    "IdentityUnavailableError": "exceptions",
    "InvalidApiKeyError": "exceptions",
    "Principal": "_lookup",
    "PrincipalLookupError": "exceptions",
    "UsageIdentity": "_identity",
    "arcade_dir": "_paths",
    "cloud_base_url": "_credentials",
    "credentials_path": "_credentials",
    "lookup_principal": "_lookup",
    "read_credentials": "_credentials",
    "remove_credentials": "_credentials",
    "save_credentials": "_credentials",
    "write_atomic": "_files",
}

__all__ = [
    "DEFAULT_CLOUD_URL",
    "Credentials",
    "CredentialsError",
    "IdentityUnavailableError",
    "InvalidApiKeyError",
    "Principal",
    "PrincipalLookupError",
    "UsageIdentity",
    "arcade_dir",
    "cloud_base_url",
    "credentials_path",
    "lookup_principal",
    "read_credentials",
    "remove_credentials",
    "save_credentials",
    "write_atomic",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'arcade_identity' has no attribute {name!r}")
    value = getattr(import_module(f"arcade_identity.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
