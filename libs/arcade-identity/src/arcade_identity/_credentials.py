"""`credentials.yaml`: the Arcade Cloud API key written by `arcade login`, and its fingerprint.

The fingerprint records which credentials file a link was made with, so that a
later command can trust the link from a `stat` (or, failing that, a hash of the
raw bytes) without parsing YAML or asking Arcade Cloud.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from arcade_identity._files import (
    NotRegularFileError,
    read_regular,
    remove_file,
    tighten,
    write_atomic,
)
from arcade_identity._paths import CREDENTIALS_FILE, DEFAULT_CLOUD_URL, arcade_dir
from arcade_identity.exceptions import CredentialsError, CredentialsUnreadableError

MAX_CREDENTIALS_SIZE = 64 * 1024
"""A real credentials file is a few hundred bytes; anything past this is not one, and
reading or parsing it must not eat into a command's 2 s budget."""

Fingerprint = dict[str, Any]


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

    # libyaml, when present, parses pathological input in milliseconds, not seconds.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(raw, Loader=loader)
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


def read_raw_credentials(path: str | os.PathLike[str]) -> tuple[bytes, os.stat_result] | None:
    """The file's bytes and stat, read through one descriptor; None when there is no file.

    Raises CredentialsError when it cannot be read, is not a regular file (a FIFO
    would block), or is larger than MAX_CREDENTIALS_SIZE.
    """
    try:
        found = read_regular(path, limit=MAX_CREDENTIALS_SIZE)
    except NotRegularFileError as exc:
        raise CredentialsError(f"{os.fspath(path)} is not a regular file") from exc
    except OSError as exc:
        raise CredentialsUnreadableError(
            f"cannot read {os.fspath(path)}: {exc.strerror or exc}"
        ) from exc
    if found is not None and len(found[0]) > MAX_CREDENTIALS_SIZE:
        raise CredentialsError(
            f"{os.fspath(path)} is larger than {MAX_CREDENTIALS_SIZE // 1024} KiB"
        )
    return found


def read_credentials(work_dir: str | os.PathLike[str] | None = None) -> Credentials | None:
    """The saved credentials, or None when there are none.

    Raises CredentialsError when the file exists but cannot be read or parsed.
    """
    found = read_raw_credentials(credentials_path(work_dir))
    return None if found is None else parse_credentials(found[0])


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
        remove_file(credentials_path(work_dir))
    except FileNotFoundError:
        return False
    return True


def cloud_base_url(credentials: Credentials | None = None) -> str:
    """`ARCADE_CLOUD_URL`, else the saved coordinator URL, else Arcade Cloud's."""
    url = os.environ.get("ARCADE_CLOUD_URL") or (credentials and credentials.coordinator_url)
    return (url or DEFAULT_CLOUD_URL).rstrip("/")


# -- the fingerprint ---------------------------------------------------------------------


def stat_key(st: os.stat_result) -> list[int]:
    """What identifies one version of a file without reading it.

    ctime too: an in-place edit that restores the old mtime still changes it.
    """
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def fingerprint(raw: bytes, st: os.stat_result) -> Fingerprint:
    """The fingerprint of credentials read as `raw` with stat `st`."""
    return {"stat": stat_key(st), "sha256": _sha256(raw)}


def current_stat(path: str | os.PathLike[str]) -> os.stat_result | None:
    """The credentials file's stat (tightening a loose mode first); None when absent.

    A symlink (credentials kept elsewhere on purpose) is followed, never chmod-ed through.
    """
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            return os.stat(path)
        if st.st_mode & 0o077:
            tighten(path, st.st_mode)
            st = os.lstat(path)
    except OSError:
        return None
    return st


def matches(path: str | os.PathLike[str], recorded: object) -> bool:
    """Whether the credentials file is still the one `recorded` was taken from.

    A matching stat answers without reading the file; a touched or copied file
    with the same bytes still matches by hash. No YAML either way.
    """
    if not isinstance(recorded, dict):
        return False
    st = current_stat(path)
    if st is None:
        return False
    if stat_key(st) == recorded.get("stat"):
        return True
    try:
        found = read_raw_credentials(path)
    except CredentialsError:
        return False
    return found is not None and _sha256(found[0]) == recorded.get("sha256")


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
