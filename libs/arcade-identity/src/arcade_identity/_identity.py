"""`UsageIdentity`: who this machine's events belong to, and the transitions between people."""

from __future__ import annotations

import contextlib
import math
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from arcade_identity import _credentials
from arcade_identity._credentials import Fingerprint
from arcade_identity._lookup import ACCESS_TOKEN, API_KEY, FailedLookups, lookup_principal
from arcade_identity._paths import CREDENTIALS_FILE, LOOKUP_FAILURE_FILE, arcade_dir
from arcade_identity._store import (
    ANON_ID,
    CREDENTIALS_GONE_SINCE,
    LINKED_CREDENTIALS,
    Data,
    IdentityStore,
    linked_principal,
    linked_to,
    rotated,
)
from arcade_identity.exceptions import (
    CredentialsError,
    IdentityUnavailableError,
    InvalidApiKeyError,
    LookupNotSentError,
    PrincipalLookupError,
)

if TYPE_CHECKING:
    import httpx

LOCK_TIMEOUT = 5.0
"""Seconds a plain read-modify-write (first creation, set, reset) waits for the lock."""
RESOLVE_BUDGET = 1.9
"""Seconds for a whole principal resolution (read, parse, imports, request): with recording
a failure, a command never waits more than 2 s for Arcade Cloud."""
CREDENTIALS_GONE_GRACE = 10.0
"""Seconds a linked identity's credentials file stays gone before its session is ended as a
logout ends it: longer than any logout takes from deleting the file to ending the session
itself, whose event must still go out as the account."""


class UsageIdentity:
    """Who this machine's events belong to, kept in `usage.json`.

    The file is loaded once per instance; `revalidate()` lets a long-lived process
    see what other processes changed. Transitions (link, account switch, logout)
    are decided and written under the `usage.json` lock after a re-read, so they
    happen once however many processes find the same change together.

    `work_dir` is the configuration folder itself (default: `$ARCADE_WORK_DIR`, else
    `~/.arcade`). It is found on first use, not here: a tool can build an
    instance at import time on a machine with no home directory, and learns of it
    (HomeNotFoundError) only when it asks for the identity.
    """

    def __init__(
        self,
        work_dir: str | os.PathLike[str] | None = None,
        *,
        lookup_timeout: float = RESOLVE_BUDGET,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._work_dir = work_dir
        self._lookup_timeout = lookup_timeout
        self._transport = transport
        self._clock = clock
        self._store_: IdentityStore | None = None
        self._data: Data | None = None
        self._principal: tuple[str | None] | None = None
        # The credentials file's stat when the principal was resolved ((None,): no file).
        self._credentials_seen: tuple[list[int] | None] | None = None
        # The principal a lookup found, with the fingerprint of the bytes it was read from.
        self._looked_up: tuple[str, Fingerprint] | None = None
        # org_id / project_id of the context in force, as last resolved (None: not yet).
        self._context: dict[str, str] | None = None

    # -- where -----------------------------------------------------------------------------

    @property
    def _store(self) -> IdentityStore:
        if self._store_ is None:
            self._store_ = IdentityStore(arcade_dir(self._work_dir))
        return self._store_

    @property
    def directory(self) -> Path:
        """The `.arcade` directory. Raises HomeNotFoundError when there is none to be had."""
        return self._store.directory

    @property
    def path(self) -> Path:
        """`usage.json`. Raises HomeNotFoundError when there is no `.arcade` to be had."""
        return self._store.path

    @property
    def credentials_path(self) -> Path:
        """`credentials.yaml`. Raises HomeNotFoundError when there is no `.arcade` to be had."""
        return self._store.directory / CREDENTIALS_FILE

    @property
    def created(self) -> bool:
        """True when this instance created `usage.json` (the machine's first tracked command)."""
        return self._store_ is not None and self._store_.created

    # -- the file --------------------------------------------------------------------------

    def load_or_create(self, *, timeout: float = LOCK_TIMEOUT) -> Data:
        """The identity, creating `usage.json` under the lock if it is absent or invalid.

        Waits at most `timeout` s for the lock (IdentityBusyError after that; 0: not
        at all). Raises IdentityUnavailableError when the file cannot be read or written.
        """
        if self._data is None:
            data = self._store.read()
            if data is None:
                data = self._store.update(lambda current: None, timeout=timeout)
            self._data = data
        return dict(self._data)

    def peek(self) -> Data | None:
        """The identity on disk, without creating one; None when there is none yet.

        Raises IdentityUnavailableError when the file cannot be read.
        """
        return dict(self._data) if self._data is not None else self._store.read()

    @property
    def anon_id(self) -> str:
        return str(self.load_or_create()[ANON_ID])

    @property
    def linked_principal_id(self) -> str | None:
        return linked_principal(self.load_or_create())

    def set_linked_principal_id(self, principal_id: str) -> None:
        """Record that `anon_id` now belongs to `principal_id`, and which credentials said so.

        Unconditional; `link_principal` is the transition that happens once.
        """
        fingerprint = self._fingerprint_for(principal_id)

        def link(data: Data) -> Data:
            return linked_to(data, principal_id, fingerprint)

        self._data = self._store.update(link, timeout=LOCK_TIMEOUT)
        self._principal = (principal_id,) if fingerprint else None

    def reset_to_anonymous(self) -> None:
        """Start over as a new anonymous person: a fresh `anon_id`, linked to nobody.

        Unconditional; `end_session` is the logout transition that happens once.
        """
        self._data = self._store.update(rotated, timeout=LOCK_TIMEOUT)
        self._principal = None

    # -- transitions, each decided under the lock ------------------------------------------

    def link_principal(
        self, principal_id: str, alias: Callable[[str, str], object], *, timeout: float
    ) -> bool:
        """Link `anon_id` to `principal_id`, aliasing it first; True if this call did it.

        Under the `usage.json` lock (waited for at most `timeout` s), after a
        re-read: credentials that are no longer those `principal_id` was found in
        (a logout meanwhile) → nothing changes. Already linked to `principal_id` →
        nothing is aliased and False is returned (the credentials' fingerprint is
        refreshed if it changed, so the next commands trust the link without a
        lookup). Linked to another
        principal → `anon_id` is rotated first, so an id already merged into one
        account is never aliased onto another. Then `alias(anon_id, principal_id)`
        is called, still under the lock (the caller bounds its time), and the link
        is stored even if it returned False or raised: an alias is never sent
        twice for a pair. An Exception from `alias` is swallowed; anything else
        (KeyboardInterrupt) is raised again once the link is stored.

        Raises IdentityBusyError if the lock is not had in time (nothing aliased),
        IdentityUnavailableError if the file cannot be read or written.
        """
        fingerprint = self._fingerprint_for(principal_id)
        path = self.credentials_path
        made = False
        interrupted: list[BaseException] = []

        def link(data: Data) -> Data | None:
            nonlocal made
            if fingerprint is not None and not _credentials.matches(path, fingerprint):
                return None  # they changed meanwhile (a logout): the next look decides
            linked = linked_principal(data)
            if linked == principal_id:
                if fingerprint is None or data.get(LINKED_CREDENTIALS) == fingerprint:
                    return None
                return linked_to(data, principal_id, fingerprint)
            if linked is not None:
                data = rotated(data)
            made = True
            try:
                alias(str(data[ANON_ID]), principal_id)
            except Exception:
                pass  # delivered or queued is the caller's business; the link stands
            except BaseException as exc:
                interrupted.append(exc)
            return linked_to(data, principal_id, fingerprint)

        try:
            self._data = self._store.update(link, timeout=timeout)
        finally:
            if interrupted:
                raise interrupted[0]
        self._principal = (principal_id,) if fingerprint else None
        return made

    def end_session(self, *, timeout: float = LOCK_TIMEOUT) -> str | None:
        """Logout: rotate `anon_id` and clear the link; returns the principal it ended.

        Under the lock, after a re-read, so that of many logouts at once exactly one
        finds the identity linked (its logout event belongs to that principal); the
        others, and a logout while anonymous, get None and leave `anon_id` alone.
        """
        ended: str | None = None

        def end(data: Data) -> Data | None:
            nonlocal ended
            ended = linked_principal(data)
            return None if ended is None else rotated(data)

        self._data = self._store.update(end, timeout=timeout)
        self._principal = None
        self._looked_up = None
        return ended

    def end_session_if_credentials_gone(
        self, *, grace: float | None = None, timeout: float = 0.0
    ) -> bool:
        """The logout of credentials deleted by hand (or by a tool that left `usage.json`
        alone): True if this call ended the session, rotating `anon_id` as a logout does.

        Linked, with no credentials file: `anon_id` belongs to that account, and events
        sent as it would count as theirs. The first process to find this writes down
        when; one that finds it still so `grace` s (CREDENTIALS_GONE_GRACE) later or
        more ends the session, once.
        Until then events go out under one-off ids (the tracker's part): an `arcade
        logout` deletes the file first and ends the session itself a moment later, and
        its event must still go out as the account. A date that is not a real past one
        (the clock went back) starts the wait again.

        Waits at most `timeout` s for the lock (IdentityBusyError after that; 0: not at
        all); IdentityUnavailableError if the file cannot be read or written.
        """
        path = self.credentials_path
        if not _gone(path):
            data = self._peek_cached()
            if data is not None and CREDENTIALS_GONE_SINCE in data:
                self._forget_credentials_gone()
            return False  # the usual case: a stat, no lock
        wait = CREDENTIALS_GONE_GRACE if grace is None else grace
        ended = False

        def end(data: Data) -> Data | None:
            nonlocal ended
            if linked_principal(data) is None or not _gone(path):
                return None
            now, since = self._clock(), data.get(CREDENTIALS_GONE_SINCE)
            waited = -1.0
            if isinstance(since, (int, float)) and not isinstance(since, bool):
                with contextlib.suppress(OverflowError):  # an integer no clock gives
                    waited = now - float(since)
            if not 0 <= waited < math.inf:
                data[CREDENTIALS_GONE_SINCE] = now
                return data
            if waited < wait:
                return None
            ended = True
            return rotated(data)

        self._data = self._store.update(end, timeout=timeout)
        if ended:
            self._principal = None
            self._looked_up = None
        return ended

    def _forget_credentials_gone(self) -> None:
        """The credentials file is back: the date its absence was found goes, if the lock
        is free now (else at a later look). Left behind, it would let the next deletion
        end the session at once, before the logout that made it could."""
        path = self.credentials_path

        def forget(data: Data) -> Data | None:
            if CREDENTIALS_GONE_SINCE not in data or _gone(path):
                return None
            del data[CREDENTIALS_GONE_SINCE]
            return data

        with contextlib.suppress(IdentityUnavailableError):
            self._data = self._store.update(forget, timeout=0)

    def revalidate(self) -> None:
        """Forget what changed on disk since it was loaded, for a long-lived process.

        If `usage.json` or the credentials file is another version than the one
        this instance used, the next access reads it again. A stat or two when
        nothing changed; never the lock, never YAML, never the network.
        """
        store = self._store_
        if store is None:
            return
        if self._data is not None and store.changed():
            self._data = None
            self._principal = None
        seen = self._credentials_seen
        if seen is not None and seen[0] != self._credentials_stat():
            self._principal = None
            self._credentials_seen = None
            self._context = None

    # -- who the events belong to ----------------------------------------------------------

    def get_principal_id(self, *, lookup: bool = True) -> str | None:
        """The principal the saved credentials belong to, or None for anonymous use.

        The linked principal is trusted without network or YAML while the credentials
        file is the one it was linked with. Otherwise the key is looked up (once per
        process, 2 s at most); a failed lookup is remembered for five minutes so the
        following commands do not wait again. With `lookup=False`, only the first
        of these: no network, no YAML, nothing created, and no lock (but once, never
        waiting for it, after the credentials came back from being deleted).
        """
        if self._principal is not None:
            cached = self._principal[0]
            if lookup or cached is None or cached == self._linked_on_disk():
                return cached
        if not lookup:
            return self._trusted_link(self._peek_cached())
        self._principal = (self._resolve_principal(),)
        return self._principal[0]

    def context_properties(self) -> dict[str, str]:
        """`org_id` and `project_id` of the credentials' context in force, those it has.

        What the last resolution found; on the steady path that is what the link's
        fingerprint kept, so no YAML is parsed for it.
        """
        if self._context is None:
            self.get_principal_id(lookup=False)
        return dict(self._context or {})

    def get_distinct_id(self) -> str:
        """The id events are sent as: the principal when known, else `anon_id`."""
        return self.get_principal_id() or self.anon_id

    def should_alias(self) -> bool:
        """True when the credentials belong to a principal `anon_id` is not linked to yet."""
        principal = self.get_principal_id()
        return principal is not None and principal != self.linked_principal_id

    def _peek_cached(self) -> Data | None:
        if self._data is None:
            self._data = self._store.read()
        return self._data

    def _linked_on_disk(self) -> str | None:
        data = self._peek_cached()
        return None if data is None else linked_principal(data)

    def _trusted_link(self, data: Data | None) -> str | None:
        """Rule 1: the linked principal, while the credentials are the ones it was linked with."""
        linked = None if data is None else linked_principal(data)
        if linked is None or data is None:
            return None
        recorded = data.get(LINKED_CREDENTIALS)
        if not _credentials.matches(self.credentials_path, recorded):
            return None
        if CREDENTIALS_GONE_SINCE in data:  # back as they were (restored by hand): once
            self._forget_credentials_gone()
        self._credentials_seen = (self._credentials_stat(),)
        self._principal = (linked,)
        assert isinstance(recorded, dict)  # matches() said so
        self._context = {
            name: value
            for name in ("org_id", "project_id")
            if isinstance(value := recorded.get(name), str) and value
        }
        return linked

    def _resolve_principal(self) -> str | None:
        # One deadline for the whole resolution: reading and parsing the
        # credentials, importing httpx and the request all come out of it.
        deadline = time.monotonic() + self._lookup_timeout
        linked = self._trusted_link(self.load_or_create())
        if linked is not None:
            return linked
        path = self.credentials_path
        st = _credentials.current_stat(path)
        self._credentials_seen = (None if st is None else _credentials.stat_key(st),)
        if st is None:
            return None  # no credentials: anonymous
        attempt = {
            "credentials": _credentials.stat_key(st),
            # Hashed: a password in the URL's userinfo is never written down.
            "cloud_url": _credentials.sha256(
                os.environ.get("ARCADE_CLOUD_URL", "").encode("utf-8", "surrogateescape")
            ),
            "context": _credentials.selected_context(),
        }
        failures = FailedLookups(self._store.directory / LOOKUP_FAILURE_FILE, self._clock)
        # Checked before any parsing: an offline user's commands pay one stat and
        # one small read for the five minutes, not YAML and a hash each time.
        if failures.recent(attempt):
            return None
        try:
            found = _credentials.read_raw_credentials(path)
            credentials = None if found is None else _credentials.parse_credentials(found[0])
        except CredentialsError:
            return None
        if found is None or credentials is None or credentials.secret is None:
            return None
        self._context = credentials.context_properties()
        if credentials.expired(self._clock()):
            return None  # refreshing the token is the job of the CLI that owns it
        try:
            principal = lookup_principal(
                credentials.secret,
                _credentials.cloud_base_url(credentials),
                kind=ACCESS_TOKEN if credentials.access_token else API_KEY,
                timeout=max(0.0, deadline - time.monotonic()),
                transport=self._transport,
            )
        except LookupNotSentError:
            return None  # this process's own lack of time, not Cloud's failure
        except (PrincipalLookupError, InvalidApiKeyError):
            failures.remember(attempt)
            return None
        self._looked_up = (
            principal.principal_id,
            _credentials.fingerprint(*found, credentials),
        )
        return principal.principal_id

    def _fingerprint_for(self, principal_id: str) -> Fingerprint | None:
        """The fingerprint of the credentials that said `principal_id`, else of today's."""
        if self._looked_up is not None and self._looked_up[0] == principal_id:
            return self._looked_up[1]
        try:
            found = _credentials.read_raw_credentials(self.credentials_path)
            if found is None:
                return None
            credentials = _credentials.parse_credentials(found[0])
        except CredentialsError:
            return None
        return _credentials.fingerprint(*found, credentials)

    def _credentials_stat(self) -> list[int] | None:
        try:
            return _credentials.stat_key(os.stat(self.credentials_path))
        except OSError:
            return None


def _gone(path: Path) -> bool:
    """Whether no credentials file is there: nothing, or not a file (a directory left by
    a bind mount, a FIFO, a link to nothing)."""
    st = _credentials.current_stat(path)
    return st is None or not stat.S_ISREG(st.st_mode)
