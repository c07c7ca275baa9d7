"""Errors raised by arcade-identity, all under one root, `ArcadeIdentityError`.

A builtin is subclassed only where the meaning matches: a file that cannot be
used is an `OSError`; an answer from Arcade Cloud (a refused key, a server on a
bad day) is not, so a broad `except OSError` never swallows "bad key".
"""

from __future__ import annotations


class ArcadeIdentityError(Exception):
    """Root of every error arcade-identity raises."""


class IdentityUnavailableError(ArcadeIdentityError, OSError):
    """`usage.json` (or its directory) cannot be read or written at all.

    Raised as `IdentityUnavailableError(errno, reason, path)` where a system call
    failed, so that `strerror` is the reason and `filename` the path.
    """


class HomeNotFoundError(IdentityUnavailableError):
    """No `ARCADE_WORK_DIR` and no home directory (HOME unset, no passwd entry).

    Callers treat it as "tracking quietly off": there is nowhere to keep an identity.
    """


class IdentityBusyError(IdentityUnavailableError):
    """The `usage.json` lock could not be had within the time the caller allowed."""


class CredentialsError(ArcadeIdentityError, ValueError):
    """`credentials.yaml` exists but cannot be read, is too large, or has the wrong shape."""


class CredentialsUnreadableError(CredentialsError):
    """`credentials.yaml` exists but the system would not let us read it (permissions, I/O).

    Unlike a damaged file, a new `arcade login` would not help.
    """


class PrincipalLookupError(ArcadeIdentityError):
    """Arcade Cloud could not be reached, timed out, or answered with a server error."""


class LookupNotSentError(PrincipalLookupError):
    """The lookup's own process ran out of time before its request went out.

    Not Arcade Cloud's failure (a starved machine, many commands starting at
    once), so it is not remembered: the next command tries again.
    """


class InvalidApiKeyError(ArcadeIdentityError):
    """Arcade Cloud refused the API key or access token (HTTP 401 or 403)."""
