"""The environment arcade-usage reads, and the one it hands to its detached sender.

What a user or another tool may set:

- `ARCADE_USAGE_TRACKING`: `0`, `false`, `no` or `off` turns tracking off.
- `DO_NOT_TRACK`: any value but empty, `0`, `false`, `no`, `off` turns it off.
- `ARCADE_USAGE_DEBUG`: print each event to stderr as a JSON line, send nothing.
- `ARCADE_USAGE_POSTHOG_HOST`, `ARCADE_USAGE_POSTHOG_API_KEY`: where events go.
- `ARCADE_WORK_DIR`: the Arcade configuration folder itself (default: `~/.arcade`).

Test-only: `ARCADE_USAGE_TIMINGS` (`life=4,request=2,linger=0.2,interval=0.1,
backoff=0.5`) shortens the sending protocol's durations (`_outbox.Timings`), as
long as their relations hold (else it is ignored). Read by the capturing process
and by its sender, which inherits it. Never set it for real use.

The parent → sender protocol. A capture files its event in the outbox first;
then, when no sender accepts, it starts `python -s -m arcade_usage` (`pythonw`
on Windows) in a new session, working directory `.arcade`, stdio on the null
device, no inherited descriptor but the accepting lock, with the caller's
environment plus:

- `ARCADE_USAGE_ACCEPT_FD`: the descriptor holding the outbox's accepting lock
  (POSIX), or `take` where a lock cannot be handed over (Windows): the capture's
  thread holds it until the sender waits for it. Absent (a sender run by hand):
  the sender takes the lock if it is free, else leaves.
- `ARCADE_USAGE_OUTBOX`: the absolute path of the outbox directory.
- `ARCADE_WORK_DIR`: absolute, so that a relative value is not read again from
  `.arcade` (the sender's working directory).
- `ARCADE_USAGE_POSTHOG_HOST`, `ARCADE_USAGE_POSTHOG_API_KEY`: the service's own,
  for entries written before entries carried their destination.
- `ARCADE_USAGE_SENDER=1`: a process carrying it never records an event or starts
  a sender of its own.
- `PYTHONWARNINGS=ignore`, and no `PYTHONSTARTUP`/`PYTHONINSPECT`.

The sender prints nothing whatever happens (its hard exit ends it with status
1); what it did is seen in the outbox and at PostHog.
"""

from __future__ import annotations

import os

TRACKING_ENV = "ARCADE_USAGE_TRACKING"
DO_NOT_TRACK_ENV = "DO_NOT_TRACK"
DEBUG_ENV = "ARCADE_USAGE_DEBUG"
HOST_ENV = "ARCADE_USAGE_POSTHOG_HOST"
API_KEY_ENV = "ARCADE_USAGE_POSTHOG_API_KEY"
WORK_DIR_ENV = "ARCADE_WORK_DIR"
ACCEPT_FD_ENV = "ARCADE_USAGE_ACCEPT_FD"
OUTBOX_ENV = "ARCADE_USAGE_OUTBOX"
SENDER_ENV = "ARCADE_USAGE_SENDER"
TIMINGS_ENV = "ARCADE_USAGE_TIMINGS"
TAKE_ACCEPT = "take"

DEFAULT_HOST = "https://us.i.posthog.com"
DEFAULT_API_KEY = "phc_zNHKkPFsrKVSpd7y85jnxW8jNVW6AQD6AwqE4nWjwpXg"  # public, write-only

OFF_WORDS = frozenset({"0", "false", "no", "off"})


def posthog_host() -> str:
    return os.environ.get(HOST_ENV) or DEFAULT_HOST


def posthog_api_key() -> str:
    return os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY


def debug_enabled() -> bool:
    value = os.environ.get(DEBUG_ENV, "").strip().lower()
    return bool(value) and value not in OFF_WORDS


def in_sender() -> bool:
    """True inside the detached sender, which must never record or spawn."""
    return bool(os.environ.get(SENDER_ENV))
