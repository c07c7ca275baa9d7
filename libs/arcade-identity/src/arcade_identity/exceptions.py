"""Errors raised by arcade-identity; each subclasses the builtin it resembles."""

from __future__ import annotations


class IdentityUnavailableError(OSError):
    """`usage.json` (or its directory) cannot be read or written at all."""


class CredentialsError(ValueError):
    """`credentials.yaml` exists but cannot be read or does not hold the expected shape."""


class PrincipalLookupError(ConnectionError):
    """Arcade Cloud could not be reached, timed out, or answered with a server error."""


class InvalidApiKeyError(PermissionError):
    """Arcade Cloud refused the API key (HTTP 401 or 403)."""
