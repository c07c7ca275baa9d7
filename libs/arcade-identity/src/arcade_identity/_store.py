"""`usage.json` under its sidecar lock: read, validate, replace, update.

Reads take no lock: every write replaces the file atomically, so a reader sees a
whole file. Every read-modify-write holds an exclusive lock on the sidecar
`usage.json.lock` (never on `usage.json` itself, which is replaced, not
rewritten) and re-reads inside it, so decisions made there are made once,
whatever runs at the same time.

Invalid content (empty, bad JSON, not an object, `anon_id` missing or not a
canonical UUID, larger than any identity we write, not a regular file) counts as
absent and is replaced by a fresh identity. Nothing of it is salvaged: our own
keys are meaningless without a valid `anon_id` (a broken file vouches for no
one), and other keys may well be someone else's file entirely (a symlink to
another tool's JSON), which must not be copied into ours. A symlink is replaced
itself, never written through. Unknown keys of a valid file survive rewrites.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arcade_identity._files import (
    DIR_MODE,
    NotRegularFileError,
    ensure_private_dir,
    file_lock,
    read_regular,
    tighten,
    write_atomic,
)
from arcade_identity._paths import USAGE_FILE, USAGE_LOCK_FILE
from arcade_identity.exceptions import IdentityBusyError, IdentityUnavailableError

Data = dict[str, Any]

MAX_USAGE_SIZE = 1 << 20
"""Far above any identity we write; a larger file is not one of ours."""

ANON_ID = "anon_id"
LINKED_PRINCIPAL_ID = "linked_principal_id"
LINKED_CREDENTIALS = "linked_credentials"
"""The fingerprint of the credentials `linked_principal_id` was looked up with."""
CREDENTIALS_GONE_SINCE = "credentials_gone_since"
"""When (Unix seconds) a process first found a linked identity's credentials file gone."""

_UNKNOWN = object()  # a version of the file that cannot be recognised again by its stat


class IdentityStore:
    """One `.arcade` directory's `usage.json`, and what this process last saw of it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / USAGE_FILE
        self.lock_path = directory / USAGE_LOCK_FILE
        self.created = False
        """True once this store has written a fresh identity (the machine's first command)."""
        self._seen: object = _UNKNOWN

    def read(self) -> Data | None:
        """The identity on disk, or None when it is absent or invalid. Takes no lock.

        Raises IdentityUnavailableError when the file cannot be read at all.
        """
        try:
            mode = os.lstat(self.directory).st_mode
            if stat.S_ISDIR(mode):
                tighten(self.directory, mode, DIR_MODE)
        except FileNotFoundError:
            self._seen = None
            return None
        except OSError:
            pass  # the read below says what is wrong
        try:
            found = read_regular(self.path, limit=MAX_USAGE_SIZE, follow_symlinks=False)
        except NotRegularFileError:
            self._seen = _UNKNOWN
            return None
        except OSError as exc:
            raise IdentityUnavailableError(
                exc.errno, exc.strerror or str(exc), os.fspath(self.path)
            ) from exc
        if found is None:
            self._seen = None
            return None
        raw, st = found
        self._seen = _stat_key(st)
        return None if len(raw) > MAX_USAGE_SIZE else valid(raw)

    def changed(self) -> bool:
        """Whether `usage.json` is another version than the one last read or written here."""
        try:
            key: object = _stat_key(os.lstat(self.path))
        except FileNotFoundError:
            key = None
        except OSError:
            return True
        return self._seen is _UNKNOWN or key != self._seen

    def update(self, change: Callable[[Data], Data | None], *, timeout: float) -> Data:
        """Re-read under the lock, apply `change`, and write what it returns.

        `change` gets a copy of the current identity (a fresh one if absent or
        invalid) and returns the identity to write, or None to leave the file as
        it is (a fresh identity is written regardless). Returns the identity now
        on disk. Raises IdentityBusyError if the lock is not had within `timeout`
        seconds, IdentityUnavailableError if the file cannot be read or written.
        """
        from filelock import Timeout

        try:
            ensure_private_dir(self.directory)
            with file_lock(self.lock_path, timeout):
                current = self.read()
                fresh = current is None
                if current is None:
                    current = {ANON_ID: str(uuid.uuid4()), LINKED_PRINCIPAL_ID: None}
                new = change(dict(current))
                if new is None and not fresh:
                    return current
                data = current if new is None else new
                write_atomic(self.path, json.dumps(data, indent=2).encode() + b"\n")
                self._seen = _stat_key(os.lstat(self.path))
                self.created = self.created or fresh
                return data
        except Timeout as exc:  # before OSError: filelock's Timeout is a TimeoutError
            raise IdentityBusyError(
                f"{self.lock_path} is held by another process (waited {timeout:g} s)"
            ) from exc
        except IdentityUnavailableError:
            raise
        except OSError as exc:
            # Named as the user knows it: the lock when that is what is in the way, else
            # usage.json (never the temp file it is written through).
            lock = os.fspath(self.lock_path)
            where = lock if exc.filename == lock else os.fspath(self.path)
            raise IdentityUnavailableError(exc.errno, exc.strerror or str(exc), where) from exc


def valid(raw: bytes) -> Data | None:
    """The parsed identity, or None when the content does not hold a usable one."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    if not isinstance(data, dict):
        return None
    anon_id = data.get(ANON_ID)
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


def linked_principal(data: Data) -> str | None:
    linked = data.get(LINKED_PRINCIPAL_ID)
    return linked if isinstance(linked, str) and linked else None


def rotated(data: Data) -> Data:
    """`data` as a new anonymous person: a fresh `anon_id`, linked to nobody."""
    data[ANON_ID] = str(uuid.uuid4())
    data[LINKED_PRINCIPAL_ID] = None
    data.pop(LINKED_CREDENTIALS, None)
    data.pop(CREDENTIALS_GONE_SINCE, None)
    return data


def linked_to(data: Data, principal_id: str, fingerprint: object) -> Data:
    """`data` linked to `principal_id`, found in the credentials `fingerprint` describes."""
    data[LINKED_PRINCIPAL_ID] = principal_id
    data[LINKED_CREDENTIALS] = fingerprint
    data.pop(CREDENTIALS_GONE_SINCE, None)
    return data


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
