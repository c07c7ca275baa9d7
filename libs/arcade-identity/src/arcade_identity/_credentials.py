"""`credentials.yaml`: the Arcade Cloud API key written by `arcade login`."""

from __future__ import annotations

import os
from pathlib import Path

from arcade_identity._files import read_bytes_or_none, write_atomic
from arcade_identity._paths import CREDENTIALS_FILE, DEFAULT_CLOUD_URL, arcade_dir
from arcade_identity.exceptions import CredentialsError


class Credentials:
    """What `arcade login` saved: the API key, the account's email, a non-default Cloud URL."""

    __slots__ = ("api_key", "coordinator_url", "email")

    def __init__(
        self, api_key: str, email: str | None = None, coordinator_url: str | None = None
    ) -> None:
        self.api_key = api_key
        self.email = email
        self.coordinator_url = coordinator_url

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self.api_key, self.email, self.coordinator_url) == (
            other.api_key,
            other.email,
            other.coordinator_url,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        # Never let the key reach a log line or a traceback by way of repr().
        return f"Credentials(email={self.email!r}, coordinator_url={self.coordinator_url!r})"


def credentials_path(work_dir: str | os.PathLike[str] | None = None) -> Path:
    return arcade_dir(work_dir) / CREDENTIALS_FILE


def parse_credentials(raw: bytes) -> Credentials | None:
    """Credentials from the file's bytes; None when they hold no API key.

    Raises CredentialsError when the bytes are not YAML of the expected shape.
    """
    import yaml

    try:
        doc = yaml.safe_load(raw)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise CredentialsError("credentials.yaml is not valid YAML") from exc
    if doc is None:
        return None
    cloud = doc.get("cloud") if isinstance(doc, dict) else None
    if not isinstance(cloud, dict):
        raise CredentialsError("credentials.yaml has no 'cloud' section")
    api = cloud.get("api")
    key = api.get("key") if isinstance(api, dict) else None
    if not key:
        return None
    if not isinstance(key, str):
        raise CredentialsError("credentials.yaml holds an API key that is not a string")
    user = cloud.get("user")
    email = user.get("email") if isinstance(user, dict) else None
    url = cloud.get("coordinator_url")
    return Credentials(
        api_key=key,
        email=email if isinstance(email, str) else None,
        coordinator_url=url if isinstance(url, str) and url else None,
    )


def read_credentials(work_dir: str | os.PathLike[str] | None = None) -> Credentials | None:
    """The saved credentials, or None when there are none.

    Raises CredentialsError when the file exists but cannot be read or parsed.
    """
    path = credentials_path(work_dir)
    try:
        raw = read_bytes_or_none(path)
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return None if raw is None else parse_credentials(raw)


def save_credentials(
    credentials: Credentials, work_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Write credentials atomically with mode 0600; returns the file's path."""
    import yaml

    cloud: dict[str, object] = {"api": {"key": credentials.api_key}}
    if credentials.email:
        cloud["user"] = {"email": credentials.email}
    if credentials.coordinator_url:
        cloud["coordinator_url"] = credentials.coordinator_url
    path = credentials_path(work_dir)
    write_atomic(path, yaml.safe_dump({"cloud": cloud}, sort_keys=False).encode())
    return path


def remove_credentials(work_dir: str | os.PathLike[str] | None = None) -> bool:
    """Delete the credentials file; True when there was one."""
    try:
        credentials_path(work_dir).unlink()
    except FileNotFoundError:
        return False
    return True


def cloud_base_url(credentials: Credentials | None = None) -> str:
    """`ARCADE_CLOUD_URL`, else the saved coordinator URL, else Arcade Cloud's."""
    url = os.environ.get("ARCADE_CLOUD_URL") or (credentials and credentials.coordinator_url)
    return (url or DEFAULT_CLOUD_URL).rstrip("/")
