"""`credentials.yaml`, in every shape Arcade's CLIs write it, and its fingerprint.

The file belongs to whichever Arcade CLI logged in: today's (arcade-core 4.23
`Config`: named `contexts`, an `active_context`, OAuth tokens, the active
context repeated flat for older readers) or ours. Tracking only reads it:
refreshing a token or rewriting the file is the owning CLI's job.

The context in force is the one `ARCADE_CONTEXT` names (for one process), else
`active_context`, else the only context, else the flat fields. Its credential is
its `auth.access_token` (looked up at `/auth/whoami`), else its `api_key`, else the
pre-context `api.key` (both looked up at `/auth/validate`). A context of kind
`self_hosted` (an engine of the user's own) holds that engine's credential: it is
never presented to Arcade Cloud, and such a context has no principal.

The fingerprint records which file (and which `ARCADE_CONTEXT`) a link was made
with, so that a later command can trust the link from a `stat` (or, failing
that, a hash of the raw bytes) without parsing YAML or asking Arcade Cloud. It
also keeps the org and project of that context, for the events, on the same terms.
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

CONTEXT_ENV = "ARCADE_CONTEXT"
SELF_HOSTED = "self_hosted"
"""arcade-core's `kind` of a context whose engine (and credential) is the user's own."""
DEFAULT_CONTEXT = "default"
"""The context name arcade-core gives credentials that came without one."""

Fingerprint = dict[str, Any]


class Credentials:
    """The credentials of the context in force: an API key or an OAuth access token, the
    account's email, a non-default Cloud URL, and the context's name, org and project.

    `engine_url` is set for a self-hosted context (arcade-core's `kind: self_hosted`):
    its credential is that engine's, not Arcade Cloud's."""

    __slots__ = (
        "access_token",
        "account_id",
        "api_key",
        "context",
        "coordinator_url",
        "email",
        "engine_url",
        "expires_at",
        "org_id",
        "org_name",
        "project_id",
        "project_name",
        "self_hosted",
    )

    def __init__(
        self,
        api_key: str | None = None,
        email: str | None = None,
        coordinator_url: str | None = None,
        *,
        access_token: str | None = None,
        expires_at: float | None = None,
        context: str | None = None,
        account_id: str | None = None,
        org_id: str | None = None,
        project_id: str | None = None,
        org_name: str | None = None,
        project_name: str | None = None,
        self_hosted: bool = False,
        engine_url: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.email = email
        self.coordinator_url = coordinator_url
        self.access_token = access_token
        self.expires_at = expires_at
        self.context = context
        self.account_id = account_id
        self.org_id = org_id
        self.project_id = project_id
        self.org_name = org_name
        self.project_name = project_name
        self.self_hosted = self_hosted
        self.engine_url = engine_url

    @property
    def secret(self) -> str | None:
        """What is presented to Arcade Cloud: the access token, else the API key; never
        the credential of a self-hosted context (another installation's secret)."""
        if self.self_hosted:
            return None
        return self.access_token or self.api_key

    def expired(self, now: float) -> bool:
        """Whether the credential is an access token past its `expires_at`."""
        return (
            self.access_token is not None and self.expires_at is not None and now >= self.expires_at
        )

    def context_properties(self) -> dict[str, str]:
        """`org_id` and `project_id` of the context, those it has."""
        found = {"org_id": self.org_id, "project_id": self.project_id}
        return {name: value for name, value in found.items() if value}

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        # Never let a key or token reach a log line or a traceback by way of repr().
        return (
            f"Credentials(email={self.email!r}, coordinator_url={self.coordinator_url!r}, "
            f"context={self.context!r})"
        )


def credentials_path(work_dir: str | os.PathLike[str] | None = None) -> Path:
    return arcade_dir(work_dir) / CREDENTIALS_FILE


def selected_context() -> str | None:
    """The context `ARCADE_CONTEXT` chooses for this process, if any."""
    return os.environ.get(CONTEXT_ENV) or None


def load_document(raw: bytes) -> dict[str, Any] | None:
    """The file's YAML as a mapping; None when it is empty.

    Raises CredentialsError when the bytes are not YAML with a `cloud` mapping.
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
    found: dict[str, Any] = doc
    return found


def context_in_force(
    cloud: dict[str, Any], chosen: str | None
) -> tuple[str | None, dict[str, Any] | None]:
    """(name, fields) of the context in force in the `cloud` section.

    `chosen` (ARCADE_CONTEXT) first, else `active_context`, else the only context,
    else the flat fields (name None). A chosen name the file lacks: fields None, but
    for `default` in a file of flat fields alone (arcade-core loads them as that one).
    """
    contexts = cloud.get("contexts")
    contexts = contexts if isinstance(contexts, dict) else {}
    if chosen is not None:
        found = contexts.get(chosen)
        if found is None and chosen == DEFAULT_CONTEXT and not contexts:
            return chosen, cloud
        return chosen, found if isinstance(found, dict) else None
    active = cloud.get("active_context")
    if isinstance(active, str) and isinstance(contexts.get(active), dict):
        return active, contexts[active]
    if len(contexts) == 1:
        [(name, fields)] = contexts.items()
        if isinstance(fields, dict):
            return str(name), fields
    return None, cloud


def parse_credentials(raw: bytes, context: str | None = None) -> Credentials | None:
    """The credentials of the context in force, from the file's bytes; None when that
    context holds no credential (a self-hosted one is a login all the same, to an engine
    of the user's own). `context` names it (default: `ARCADE_CONTEXT`).

    Raises CredentialsError when the bytes are not YAML of the expected shape.
    """
    doc = load_document(raw)
    if doc is None:
        return None
    cloud: dict[str, Any] = doc["cloud"]
    name, fields = context_in_force(cloud, context if context is not None else selected_context())
    if fields is None:
        return None  # ARCADE_CONTEXT names a context this file does not hold
    auth = _mapping(fields.get("auth"))
    user = _mapping(fields.get("user"))
    details = _mapping(fields.get("context"))
    access_token = _text(auth.get("access_token"), "an access token")
    api_key = _text(fields.get("api_key"), "an API key")
    if api_key is None and cloud.get("kind") != SELF_HOSTED:
        # The pre-context key goes with the flat fields: not when they are a self-hosted
        # engine's (a file an older `arcade login` of ours wrote may hold its key there).
        api_key = _text(_mapping(cloud.get("api")).get("key"), "an API key")
    self_hosted = fields.get("kind") == SELF_HOSTED
    if access_token is None and api_key is None and not self_hosted:
        return None
    url = _text(fields.get("coordinator_url"), "a Cloud URL")
    if url is None and name is not None:
        url = _text(cloud.get("coordinator_url"), "a Cloud URL")
    return Credentials(
        api_key=api_key,
        email=_text(user.get("email")),
        coordinator_url=url,
        access_token=access_token,
        expires_at=_timestamp(auth.get("expires_at")) if access_token else None,
        context=name,
        account_id=_text(user.get("account_id")),
        org_id=_text(details.get("org_id")),
        project_id=_text(details.get("project_id")),
        org_name=_text(details.get("org_name")),
        project_name=_text(details.get("project_name")),
        self_hosted=self_hosted,
        engine_url=_text(fields.get("engine_url")),
    )


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object, what: str | None = None) -> str | None:
    """A non-empty string, or None. A secret of another type is an error, not "absent"."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if what is not None:
        raise CredentialsError(f"credentials.yaml holds {what} that is not a string")
    return None


def _timestamp(value: object) -> float | None:
    """`expires_at` as a Unix time; a time without a zone is local, as arcade-core reads it.

    None (never expires, as far as we know) when absent or unreadable: Cloud decides.
    """
    from datetime import datetime

    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        try:
            return value.timestamp()
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


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
    """The credentials of the context in force, or None when there are none.

    Raises CredentialsError when the file exists but cannot be read or parsed.
    """
    found = read_raw_credentials(credentials_path(work_dir))
    return None if found is None else parse_credentials(found[0])


def save_credentials(
    credentials: Credentials, work_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Save an API-key login atomically (mode 0600) as the context in force; returns the path.

    Written in the shape today's Arcade CLI reads (arcade-core's `Config`: the
    context under `contexts`, repeated flat) and with the pre-context `api.key`
    older readers link by. The context in force (`ARCADE_CONTEXT`, else the active
    one, else `default`) is replaced whole, so an OAuth token it held no longer
    outranks the new key; other contexts are kept as they were.
    """
    path = credentials_path(work_dir)
    cloud = _existing_cloud(path)
    contexts = _mapping(cloud.get("contexts"))
    chosen = selected_context()
    name, _ = context_in_force(cloud, chosen)
    name = name or DEFAULT_CONTEXT
    fields: dict[str, Any] = {}
    if credentials.coordinator_url:
        fields["coordinator_url"] = credentials.coordinator_url
    if credentials.api_key:
        fields["api_key"] = credentials.api_key
    if credentials.email:
        fields["user"] = {"email": credentials.email}
    contexts = {**contexts, name: fields}
    active = cloud.get("active_context")
    if chosen is None or not isinstance(active, str) or active not in contexts:
        active = name  # a context chosen for one process does not become the default
    _write(path, cloud, contexts, active)
    return path


def remove_credentials(work_dir: str | os.PathLike[str] | None = None) -> bool:
    """Log out of the context in force; True when there was one to remove.

    The file goes when that was its only context (or it had none, the older
    shape); otherwise the context is dropped (the flat fields, when they were in
    force beside contexts none of which is active) and, if it was the active one,
    the first remaining (by name, as arcade-core picks) becomes active. A context
    `ARCADE_CONTEXT` names that the file lacks: nothing to remove, nothing touched.

    Raises CredentialsError, leaving the file as it is, when it cannot be read or
    parsed: which context is in force (and what else it holds) cannot be told.
    """
    path = credentials_path(work_dir)
    found = read_raw_credentials(path)
    if found is None:
        return False
    doc = load_document(found[0])
    cloud = _mapping(doc.get("cloud")) if doc else {}
    contexts = _mapping(cloud.get("contexts"))
    name, fields = context_in_force(cloud, selected_context())
    if fields is None:
        return False  # ARCADE_CONTEXT names none of its contexts: as `whoami` sees it
    # Flat fields in force beside named contexts (none of them active) go alone.
    if not contexts or (len(contexts) == 1 and name is not None):
        try:
            remove_file(path)  # on Windows, waits for a reader that holds it open
        except FileNotFoundError:
            return False
        return True
    contexts = {k: v for k, v in contexts.items() if k != name}
    active = cloud.get("active_context")
    if not isinstance(active, str) or active not in contexts:
        active = sorted(contexts)[0]
    _write(path, cloud, contexts, active)
    return True


FLAT_FIELDS = (
    "kind",
    "engine_url",
    "coordinator_url",
    "dashboard_url",
    "auth",
    "api_key",
    "user",
    "context",
)
"""What arcade-core repeats flat for the active context."""


def _existing_cloud(path: Path) -> dict[str, Any]:
    """The `cloud` section on disk, else empty (no file, or a damaged one being replaced)."""
    try:
        found = read_raw_credentials(path)
        doc = None if found is None else load_document(found[0])
    except CredentialsError:
        return {}
    return dict(_mapping(doc.get("cloud"))) if doc else {}


def _write(path: Path, cloud: dict[str, Any], contexts: dict[str, Any], active: str) -> None:
    import yaml

    flat = _mapping(contexts.get(active))
    rest = {
        k: v
        for k, v in cloud.items()
        if k not in (*FLAT_FIELDS, "api", "contexts", "active_context")
    }
    section: dict[str, Any] = {**rest, "active_context": active, "contexts": contexts}
    section.update({k: v for k, v in flat.items() if k in FLAT_FIELDS})
    key = flat.get("api_key")
    if isinstance(key, str) and key and not flat.get("auth") and flat.get("kind") != SELF_HOSTED:
        section["api"] = {"key": key}  # the pre-context shape, for older readers
    write_atomic(path, yaml.safe_dump({"cloud": section}, sort_keys=False).encode())


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


def fingerprint(
    raw: bytes, st: os.stat_result, credentials: Credentials | None = None
) -> Fingerprint:
    """The fingerprint of credentials read as `raw` with stat `st`, for this process's
    `ARCADE_CONTEXT`, with the org and project of the context in force."""
    found: Fingerprint = {"stat": stat_key(st), "sha256": sha256(raw)}
    chosen = selected_context()
    if chosen is not None:
        found["context"] = chosen
    if credentials is not None:
        found.update(credentials.context_properties())
    return found


def current_stat(path: str | os.PathLike[str]) -> os.stat_result | None:
    """The credentials file's stat (tightening a loose mode first); None when absent.

    A symlink (credentials kept elsewhere on purpose) is followed, never chmod-ed through;
    only a regular file is tightened (a directory at that name made 0600 could no
    longer be entered).
    """
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            return os.stat(path)
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
            tighten(path, st.st_mode)
            st = os.lstat(path)
    except OSError:
        return None
    return st


def matches(path: str | os.PathLike[str], recorded: object) -> bool:
    """Whether the credentials file (and `ARCADE_CONTEXT`) are still those `recorded`
    was taken from.

    A matching stat answers without reading the file; a touched or copied file
    with the same bytes still matches by hash. No YAML either way.
    """
    if not isinstance(recorded, dict) or recorded.get("context") != selected_context():
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
    return found is not None and sha256(found[0]) == recorded.get("sha256")


def sha256(data: bytes) -> str:
    """A SHA-256 of `data`, in hex: tells contents apart without keeping them."""
    import hashlib

    return hashlib.sha256(data).hexdigest()
