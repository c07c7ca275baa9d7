"""Errors raised by arcade-usage; each subclasses the builtin it resembles."""

from __future__ import annotations


class DeliveryError(ConnectionError):
    """PostHog did not accept a batch: unreachable, too slow, or an error status."""
