"""Usage tracking for Arcade's command-line tools.

`CommandTracker` records one event per command; `UsageService` sends it to
PostHog from a detached process, so a command never waits for analytics.
Nothing heavy is imported here: posthog loads only in the sender and for an
alias, typer only in `arcade_usage.typer`.

The names below load on first use. `python -m arcade_usage` imports this
package before the sender runs, and a sender that only hands its event over
should not pay for the tracker, the service and subprocess.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing

if TYPE_CHECKING:
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

_HOMES = {
    "CommandTracker": "_tracker",
    "DeliveryError": "exceptions",
    "FAILED": "_properties",
    "Outbox": "_outbox",
    "SUCCEEDED": "_properties",
    "UsageService": "_service",
    "disable_tracking": "_consent",
    "enable_tracking": "_consent",
    "installed_version": "_version",
    "is_tracking_enabled": "_consent",
    "scrub": "_properties",
    "tracking_state": "_consent",
}

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


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'arcade_usage' has no attribute {name!r}")
    value = getattr(import_module(f"arcade_usage.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
