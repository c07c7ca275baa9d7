"""The identity behind Arcade's CLI usage analytics.

`usage.json` keeps an anonymous id and, after login, the principal it is linked
to; `credentials.yaml` keeps the Arcade Cloud API key. Heavy modules (filelock,
httpx, yaml) load only when a write, a lookup or a YAML parse needs them.
"""

from __future__ import annotations

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
