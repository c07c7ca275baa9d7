"""Errors raised by arcade-usage, under one root."""

from __future__ import annotations


class UsageError(Exception):
    """The root of arcade-usage's errors."""


class DeliveryError(UsageError):
    """PostHog did not take a batch, for a passing reason: unreachable, too slow, 408/429/5xx.

    `retry_after` is PostHog's `Retry-After`, in seconds, when it gave one;
    `timed_out` says the request went out and no answer came in time (it may have
    landed: the batch is not resent whole more than once).
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.timed_out = timed_out


class MessageRefusedError(DeliveryError):
    """PostHog refused a batch for good (a 4xx other than 408 and 429): retrying cannot help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
