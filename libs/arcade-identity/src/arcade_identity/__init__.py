"""The identity behind Arcade's CLI usage analytics.

`usage.json` keeps an anonymous id and, after login, the principal it is linked
to; `credentials.yaml` keeps the Arcade Cloud credentials (an API key or OAuth
tokens, in named contexts) of whichever Arcade CLI logged in. Heavy modules (filelock,
httpx, yaml) load only when a write, a lookup or a YAML parse needs them.

The names below load on first use (PEP 562), so that the detached sender, which
needs only `write_atomic` and a few file names, does not import the rest.
`_NAMES` is the one table of what is public and where it lives; a test holds it,
`__all__` and the TYPE_CHECKING imports together.

=================  ===========================================================
module             holds
=================  ===========================================================
`exceptions`       the error types, under `ArcadeIdentityError`
`_paths`           where the configuration folder is, and everything in it
`_files`           private directory and files (modes, or an ACL), atomic replacement,
                   the lock the kernel releases: each chosen per platform
`_store`           `usage.json` under its sidecar lock: read, validate, update
`_credentials`     `credentials.yaml`, and the fingerprint a link is trusted by
`_lookup`          asking Arcade Cloud who a key or token is; Cloud-failure memory
`_identity`        `UsageIdentity`, the facade: who events belong to, transitions
=================  ===========================================================
"""

from __future__ import annotations

import sys

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
    from arcade_identity._files import (
        ensure_private_dir,
        file_lock,
        no_window_flags,
        remove_file,
        replace_file,
        write_atomic,
    )
    from arcade_identity._identity import CREDENTIALS_GONE_GRACE, UsageIdentity
    from arcade_identity._lookup import Principal, lookup_principal, shown_url
    from arcade_identity._paths import (
        CREDENTIALS_FILE,
        DEFAULT_CLOUD_URL,
        DISABLED_FILE,
        LOOKUP_FAILURE_FILE,
        OUTBOX_DIR,
        USAGE_FILE,
        USAGE_LOCK_FILE,
        arcade_dir,
    )
    from arcade_identity.exceptions import (
        ArcadeIdentityError,
        CredentialsError,
        CredentialsUnreadableError,
        HomeNotFoundError,
        IdentityBusyError,
        IdentityUnavailableError,
        InvalidApiKeyError,
        LookupNotSentError,
        PrincipalLookupError,
    )

_NAMES = {
    "ArcadeIdentityError": "exceptions",
    "CREDENTIALS_FILE": "_paths",
    "CREDENTIALS_GONE_GRACE": "_identity",
    "Credentials": "_credentials",
    "CredentialsError": "exceptions",
    "CredentialsUnreadableError": "exceptions",
    "DEFAULT_CLOUD_URL": "_paths",
    "DISABLED_FILE": "_paths",
    "HomeNotFoundError": "exceptions",
    "IdentityBusyError": "exceptions",
    "IdentityUnavailableError": "exceptions",
    "InvalidApiKeyError": "exceptions",
    "LOOKUP_FAILURE_FILE": "_paths",
    "LookupNotSentError": "exceptions",
    "OUTBOX_DIR": "_paths",
    "Principal": "_lookup",
    "PrincipalLookupError": "exceptions",
    "USAGE_FILE": "_paths",
    "USAGE_LOCK_FILE": "_paths",
    "UsageIdentity": "_identity",
    "arcade_dir": "_paths",
    "cloud_base_url": "_credentials",
    "credentials_path": "_credentials",
    "ensure_private_dir": "_files",
    "file_lock": "_files",
    "lookup_principal": "_lookup",
    "no_window_flags": "_files",
    "read_credentials": "_credentials",
    "remove_credentials": "_credentials",
    "remove_file": "_files",
    "replace_file": "_files",
    "save_credentials": "_credentials",
    "shown_url": "_lookup",
    "write_atomic": "_files",
}

__all__ = [
    "CREDENTIALS_FILE",
    "CREDENTIALS_GONE_GRACE",
    "DEFAULT_CLOUD_URL",
    "DISABLED_FILE",
    "LOOKUP_FAILURE_FILE",
    "OUTBOX_DIR",
    "USAGE_FILE",
    "USAGE_LOCK_FILE",
    "ArcadeIdentityError",
    "Credentials",
    "CredentialsError",
    "CredentialsUnreadableError",
    "HomeNotFoundError",
    "IdentityBusyError",
    "IdentityUnavailableError",
    "InvalidApiKeyError",
    "LookupNotSentError",
    "Principal",
    "PrincipalLookupError",
    "UsageIdentity",
    "arcade_dir",
    "cloud_base_url",
    "credentials_path",
    "ensure_private_dir",
    "file_lock",
    "lookup_principal",
    "no_window_flags",
    "read_credentials",
    "remove_credentials",
    "remove_file",
    "replace_file",
    "save_credentials",
    "shown_url",
    "write_atomic",
]


def __getattr__(name: str) -> object:
    home = _NAMES.get(name)
    if home is None:
        raise AttributeError(f"module 'arcade_identity' has no attribute {name!r}")
    # __import__ rather than importlib.import_module: importing importlib costs the
    # detached sender collections, functools and more on Python 3.12+.
    __import__(f"arcade_identity.{home}")
    value = getattr(sys.modules[f"arcade_identity.{home}"], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])
