"""Usage tracking for Arcade's command-line tools.

`CommandTracker` records one event per command; `UsageService` sends it to
PostHog from a detached process, so a command never waits for analytics.
Nothing heavy is imported here: posthog loads only in the sender and for an
alias, typer only in `arcade_usage.typer`.
"""

from __future__ import annotations

from arcade_usage._consent import (
    disable_tracking,
    enable_tracking,
    is_tracking_enabled,
    tracking_state,
)
from arcade_usage._outbox import Outbox
from arcade_usage._properties import FAILED, SUCCEEDED, scrub
from arcade_usage._service import UsageService
from arcade_usage._tracker import CommandTracker
from arcade_usage._version import installed_version
from arcade_usage.exceptions import DeliveryError

__all__ = [
    "FAILED",
    "SUCCEEDED",
    "CommandTracker",
    "DeliveryError",
    "Outbox",
    "UsageService",
    "disable_tracking",
    "enable_tracking",
    "installed_version",
    "is_tracking_enabled",
    "scrub",
    "tracking_state",
]
