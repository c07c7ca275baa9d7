"""`usage.json`: the anonymous id and the principal it has been linked to."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcade_identity._credentials import (
    Credentials,
    cloud_base_url,
    credentials_path,
    parse_credentials,
)
from arcade_identity._files import ensure_private_dir, read_bytes_or_none, write_atomic
from arcade_identity._lookup import lookup_principal
from arcade_identity._paths import LOOKUP_FAILURE_FILE, USAGE_FILE, arcade_dir
from arcade_identity.exceptions import (
    CredentialsError,
    IdentityUnavailableError,
    InvalidApiKeyError,
    PrincipalLookupError,
)

if TYPE_CHECKING:
    import httpx

LOCK_TIMEOUT = 5.0
RESOLVE_BUDGET = 1.9
"""Seconds for a whole principal resolution (parse, imports, request): with recording a
failure, a command never waits more than 2 s for Arcade Cloud."""
FAILED_LOOKUP_MEMORY = 300.0  # seconds during which a failed lookup is not retried

Data = dict[str, Any]


class UsageIdentity:
    """Who this machine's events belong to, kept in `usage.json`.

    Reads take no lock: every write replaces the file atomically, so a reader sees
    a whole file. Every read-modify-write holds an exclusive lock on a sidecar
    `usage.json.lock` and re-reads inside it, so processes racing on an empty
    directory agree on one `anon_id`. The file is loaded once per instance.
    """

    def __init__(
        self,
        work_dir: str | os.PathLike[str] | None = None,
        *,
        lookup_timeout: float = RESOLVE_BUDGET,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory: Path = arcade_dir(work_dir)
        self.path: Path = self.directory / USAGE_FILE
        self.credentials_path: Path = credentials_path(work_dir)
        self._lock_path = self.directory / f"{USAGE_FILE}.lock"
        self._failure_path = self.directory / LOOKUP_FAILURE_FILE
        self._lookup_timeout = lookup_timeout
        self._transport = transport
        self._clock = clock
        self._data: Data | None = None
        self._principal: tuple[str | None] | None = None
        self.created = False
        """True when this instance created `usage.json` (the machine's first tracked command)."""

    # -- the file --------------------------------------------------------------------------

    def load_or_create(self) -> Data:
        """The identity, creating `usage.json` under the lock if it is absent or invalid.

        Raises IdentityUnavailableError when the file cannot be read or written.
        """
        if self._data is None:
            data = self._read()
            if data is None:
                data = self._update(lambda current: current)
            self._data = data
        return dict(self._data)

    def peek(self) -> Data | None:
        """The identity on disk, without creating one; None when there is none yet.

        Raises IdentityUnavailableError when the file cannot be read.
        """
        return dict(self._data) if self._data is not None else self._read()

    @property
    def anon_id(self) -> str:
        return str(self.load_or_create()["anon_id"])

    @property
    def linked_principal_id(self) -> str | None:
        linked = self.load_or_create().get("linked_principal_id")
        return linked if isinstance(linked, str) and linked else None

    def set_linked_principal_id(self, principal_id: str) -> None:
        """Record that `anon_id` now belongs to `principal_id`, and which credentials said so."""
        fingerprint = self._credentials_fingerprint()

        def link(data: Data) -> Data:
            data["linked_principal_id"] = principal_id
            data["linked_credentials"] = fingerprint
            return data

        self._data = self._update(link, write_always=True)
        self._principal = (principal_id,) if fingerprint else None

    def reset_to_anonymous(self) -> None:
        """Start over as a new anonymous person: a fresh `anon_id`, linked to nobody."""

        def rotate(data: Data) -> Data:
            data["anon_id"] = str(uuid.uuid4())
            data["linked_principal_id"] = None
            data.pop("linked_credentials", None)
            return data

        self._data = self._update(rotate, write_always=True)
        self._principal = None

    def _read(self) -> Data | None:
        try:
            raw = read_bytes_or_none(self.path)
        except OSError as exc:
            raise IdentityUnavailableError(f"cannot read {self.path}: {exc}") from exc
        return None if raw is None else _valid(raw)

    def _update(self, change: Callable[[Data], Data], *, write_always: bool = False) -> Data:
        """Apply `change` to the current identity while holding the sidecar lock."""
        from filelock import FileLock, Timeout

        try:
            ensure_private_dir(self.directory)
            with FileLock(self._lock_path, timeout=LOCK_TIMEOUT, mode=0o600):
                raw = read_bytes_or_none(self.path)
                current = None if raw is None else _valid(raw)
                created = current is None
                if current is None:
                    current = {**_salvage(raw), "anon_id": str(uuid.uuid4())}
                    current.setdefault("linked_principal_id", None)
                data = change(current)
                if created or write_always:
                    write_atomic(self.path, json.dumps(data, indent=2).encode() + b"\n")
                    self.created = self.created or created
                return data
        except (OSError, Timeout) as exc:
            raise IdentityUnavailableError(f"cannot update {self.path}: {exc}") from exc

    # -- who the events belong to ----------------------------------------------------------

    def get_principal_id(self) -> str | None:
        """The principal the saved credentials belong to, or None for anonymous use.

        The linked principal is trusted without network or YAML while the credentials
        file is the one it was linked with. Otherwise the key is looked up (once per
        process, 2 s at most); a failed lookup is remembered for five minutes so the
        following commands do not wait again.
        """
        if self._principal is None:
            self._principal = (self._resolve_principal(),)
        return self._principal[0]

    def get_distinct_id(self) -> str:
        """The id events are sent as: the principal when known, else `anon_id`."""
        return self.get_principal_id() or self.anon_id

    def should_alias(self) -> bool:
        """True when the credentials belong to a principal `anon_id` is not linked to yet."""
        principal = self.get_principal_id()
        return principal is not None and principal != self.linked_principal_id

    def _resolve_principal(self) -> str | None:
        # One deadline for the whole resolution: reading and parsing the
        # credentials, importing httpx and the request all come out of it.
        deadline = time.monotonic() + self._lookup_timeout
        linked = self.linked_principal_id
        if linked and self._credentials_match(self.load_or_create().get("linked_credentials")):
            return linked
        try:
            attempt = {
                "credentials": _stat_key(os.stat(self.credentials_path)),
                "cloud_url": os.environ.get("ARCADE_CLOUD_URL", ""),
            }
        except OSError:
            return None  # no credentials: anonymous
        # Checked before any parsing: an offline user's commands pay one stat and
        # one small read for the five minutes, not YAML and a hash each time.
        if self._lookup_failed_recently(attempt):
            return None
        credentials = self._read_credentials()
        if credentials is None:
            return None
        try:
            principal = lookup_principal(
                credentials.api_key,
                cloud_base_url(credentials),
                timeout=max(0.0, deadline - time.monotonic()),
                transport=self._transport,
            )
        except (PrincipalLookupError, InvalidApiKeyError):
            self._remember_failed_lookup(attempt)
            return None
        return principal.principal_id

    def _read_credentials(self) -> Credentials | None:
        try:
            raw = read_bytes_or_none(self.credentials_path)
            return None if raw is None else parse_credentials(raw)
        except (OSError, CredentialsError):
            return None

    def _credentials_fingerprint(self) -> dict[str, Any] | None:
        try:
            stat = os.stat(self.credentials_path)
            raw = self.credentials_path.read_bytes()
        except OSError:
            return None
        return {"stat": _stat_key(stat), "sha256": _sha256(raw)}

    def _credentials_match(self, fingerprint: object) -> bool:
        """Whether the credentials file is the one recorded at link time.

        A matching stat answers without reading the file; a touched or copied file
        with the same bytes still matches by hash.
        """
        if not isinstance(fingerprint, dict):
            return False
        try:
            stat = os.stat(self.credentials_path)
            if _stat_key(stat) == fingerprint.get("stat"):
                return True
            return _sha256(self.credentials_path.read_bytes()) == fingerprint.get("sha256")
        except OSError:
            return False

    def _lookup_failed_recently(self, attempt: dict[str, Any]) -> bool:
        """Whether a lookup with these very credentials (and Cloud URL) failed lately."""
        try:
            record = json.loads(self._failure_path.read_bytes())
            failed_at = float(record["failed_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        same = record.get("attempt") == attempt
        return same and 0 <= self._clock() - failed_at < FAILED_LOOKUP_MEMORY

    def _remember_failed_lookup(self, attempt: dict[str, Any]) -> None:
        record = {"failed_at": self._clock(), "attempt": attempt}
        # If this cannot be written, the next command simply tries again.
        with contextlib.suppress(OSError):
            write_atomic(self._failure_path, json.dumps(record).encode())


def _valid(raw: bytes) -> Data | None:
    """The parsed identity, or None when the content does not hold a usable one."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    if not isinstance(data, dict):
        return None
    anon_id = data.get("anon_id")
    if not isinstance(anon_id, str):
        return None
    try:
        # uuid.UUID() also takes " 0000...", "0_00...", "urn:uuid:..."; only the canonical
        # form is an anon_id we would have written and can send as-is.
        if str(uuid.UUID(anon_id)) != anon_id.lower():
            return None
    except ValueError:
        return None
    return data


def _salvage(raw: bytes | None) -> Data:
    """Keys of an invalid identity worth keeping (another tool's), or nothing."""
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k not in ("anon_id", "linked_principal_id")}


def _stat_key(stat: os.stat_result) -> list[int]:
    # ctime too: an in-place edit that restores the old mtime still changes it.
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
