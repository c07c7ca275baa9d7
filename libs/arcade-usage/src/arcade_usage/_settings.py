"""Names of the environment variables and files arcade-usage reads, and their defaults."""

from __future__ import annotations

import os

TRACKING_ENV = "ARCADE_USAGE_TRACKING"
DO_NOT_TRACK_ENV = "DO_NOT_TRACK"
DEBUG_ENV = "ARCADE_USAGE_DEBUG"
HOST_ENV = "ARCADE_USAGE_POSTHOG_HOST"
API_KEY_ENV = "ARCADE_USAGE_POSTHOG_API_KEY"
EVENT_ENV = "ARCADE_USAGE_EVENT_DATA"
OUTBOX_ENV = "ARCADE_USAGE_OUTBOX"
"""Set by the spawner: the outbox directory the sender files its event in."""
SENDER_ENV = "ARCADE_USAGE_SENDER"
"""Set in the sender's environment: a process carrying it never tracks or spawns."""

DEFAULT_HOST = "https://us.i.posthog.com"
DEFAULT_API_KEY = "phc_zNHKkPFsrKVSpd7y85jnxW8jNVW6AQD6AwqE4nWjwpXg"  # public, write-only

DISABLED_FILE = "usage_disabled"
OUTBOX_DIR = "usage_outbox"

OFF_WORDS = frozenset({"0", "false", "no", "off"})


def posthog_host() -> str:
    return os.environ.get(HOST_ENV) or DEFAULT_HOST


def posthog_api_key() -> str:
    return os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY


def debug_enabled() -> bool:
    value = os.environ.get(DEBUG_ENV, "").strip().lower()
    return bool(value) and value not in OFF_WORDS
