"""Usage tracking for Arcade's tools: commands, MCP servers, and the sending behind them.

`CommandTracker` records one event per command and `ServerTracker` a server's
start and every tool call; `UsageService` hands each event to a detached sender
(`python -m arcade_usage`) through an on-disk outbox, so no caller ever waits for
analytics. Nothing heavy is imported here: posthog loads only in the sender and
for an alias, typer only in `arcade_usage.typer`.

=============  ==================================================================
module         holds
=============  ==================================================================
`_tracker`     `CommandTracker`, and the lazy alias both trackers share
`_server`      `ServerTracker`
`_service`     `UsageService`: capture, alias, starting the sender
`_sender`      the detached process, `python -m arcade_usage`
`_outbox`      the sending protocol: the outbox, its locks, back-off, the uploader, the log
`_posthog`     one request to PostHog, and what its answer means
`_events`      what an event is: names, the message, properties, versions
`_scrub`       what an error message may say before it leaves the machine
`_ci`          whether a CI system runs us (`is_ci` of event properties)
`_consent`     whether tracking is on and why; the one-time notice
`_env`         environment variables, and the parent → sender protocol
`typer`        `TrackedTyper`, for any Typer application
=============  ==================================================================

The names below load on first use (PEP 562): `python -m arcade_usage` imports
this package before the sender runs, and a sender that only hands its event over
should not pay for the trackers, the service and subprocess. `_NAMES` is the one
table of what is public; a test holds it, `__all__` and the TYPE_CHECKING imports
together.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing

if TYPE_CHECKING:
    from arcade_usage._ci import CI_VARIABLES, is_ci
    from arcade_usage._consent import (
        disable_tracking,
        enable_tracking,
        is_tracking_enabled,
        tracking_state,
    )
    from arcade_usage._events import FAILED, SUCCEEDED, installed_version, valid_text
    from arcade_usage._outbox import Outbox, usage_log
    from arcade_usage._scrub import scrub
    from arcade_usage._server import ServerTracker
    from arcade_usage._service import UsageService
    from arcade_usage._tracker import CommandTracker
    from arcade_usage.exceptions import DeliveryError, MessageRefusedError, UsageError

_NAMES = {
    "CI_VARIABLES": "_ci",
    "CommandTracker": "_tracker",
    "DeliveryError": "exceptions",
    "FAILED": "_events",
    "MessageRefusedError": "exceptions",
    "Outbox": "_outbox",
    "SUCCEEDED": "_events",
    "ServerTracker": "_server",
    "UsageError": "exceptions",
    "UsageService": "_service",
    "disable_tracking": "_consent",
    "enable_tracking": "_consent",
    "installed_version": "_events",
    "is_ci": "_ci",
    "is_tracking_enabled": "_consent",
    "scrub": "_scrub",
    "tracking_state": "_consent",
    "usage_log": "_outbox",
    "valid_text": "_events",
}

__all__ = [
    "CI_VARIABLES",
    "FAILED",
    "SUCCEEDED",
    "CommandTracker",
    "DeliveryError",
    "MessageRefusedError",
    "Outbox",
    "ServerTracker",
    "UsageError",
    "UsageService",
    "disable_tracking",
    "enable_tracking",
    "installed_version",
    "is_ci",
    "is_tracking_enabled",
    "scrub",
    "tracking_state",
    "usage_log",
    "valid_text",
]


def __getattr__(name: str) -> object:
    home = _NAMES.get(name)
    if home is None:
        raise AttributeError(f"module 'arcade_usage' has no attribute {name!r}")
    # __import__ rather than importlib.import_module: importing importlib costs the
    # detached sender collections, functools and more on Python 3.12+.
    __import__(f"arcade_usage.{home}")
    value = getattr(sys.modules[f"arcade_usage.{home}"], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])
