"""What an event is: its names, the message PostHog receives, and the properties it carries.

A message is built once, when the command finished or the call was tracked, and
then travels unchanged (environment, outbox, request): its `uuid` makes a
redelivery idempotent and its `timestamp` says when it happened, not when it
was sent. Every string in it is valid Unicode, so it encodes as valid UTF-8
JSON (a lone surrogate, say from a non-UTF-8 path, is replaced, not refused;
inf and nan, which JSON cannot hold, become null). What a tracker sends is also
bounded in size (`bounded`), whatever its caller gave it.
"""

from __future__ import annotations

import itertools
import os
import platform
import sys
import uuid
from datetime import datetime, timezone
from typing import Any, TypedDict

from arcade_usage._ci import is_ci

SUCCEEDED = "CLI execution succeeded"
FAILED = "CLI execution failed"
SERVER_STARTED = "MCP server started"
TOOL_CALLED = "MCP tool called"
ALIAS = "$create_alias"
UNNAMED = ""
"""The distinct_id of an event recorded before there was an identity to send it as
(another process was creating it): the uploader names it with the `anon_id`."""
MAX_TEXT_CHARS = 500
"""Every text of a tracker's properties is cut to this (a 100 KB host name too): a host
name is at most 253. Even as JSON escapes them (12 bytes for an emoji), the few texts a
caller gives keep an event well under 32 KB."""
MAX_ITEMS = 100
"""Every list or object of a tracker's properties keeps at most this many entries."""


class Message(TypedDict):
    """One event (or alias) as PostHog's `/batch/` endpoint takes it."""

    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: str
    uuid: str


def make_message(
    event: str,
    distinct_id: str,
    properties: dict[str, Any],
    *,
    is_anon: bool = False,
    timestamp: datetime | None = None,
    repaired: dict[str, Any] | None = None,
) -> Message:
    """A new message with its own uuid; anonymous ones ask PostHog for no person profile.

    Every message, alias included, tells PostHog not to derive a location from the
    sender's IP address (`$geoip_disable`), as posthog-python's own client does by
    default and Arcade's events always have. `repaired`: more properties, made valid
    already (`repair`), added as they are (those a process sends with every event).
    """
    properties = _repaired(dict(properties))
    if repaired:
        properties.update(repaired)
    if is_anon:
        properties["$process_person_profile"] = False
    properties["$geoip_disable"] = True
    when = timestamp or datetime.now(timezone.utc)
    message: Message = {
        "event": valid_text(event),
        "distinct_id": valid_text(distinct_id),
        "properties": properties,
        "timestamp": when.isoformat(),
        "uuid": str(uuid.uuid4()),
    }
    return message


def alias_message(previous_id: str, distinct_id: str) -> Message:
    """PostHog's `$create_alias`: `previous_id` and `distinct_id` are one person."""
    return make_message(ALIAS, previous_id, {"distinct_id": previous_id, "alias": distinct_id})


def is_message(value: object) -> bool:
    """Whether `value` (decoded JSON) has the shape of a message."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("event"), str)
        and isinstance(value.get("distinct_id"), str)
        and isinstance(value.get("uuid"), str)
        and isinstance(value.get("timestamp"), str)
        and isinstance(value.get("properties"), dict)
    )


def valid_text(value: str) -> str:
    """`value` as valid Unicode: lone surrogates become U+FFFD (a path's bytes that are
    not UTF-8 too), so that it can be written as UTF-8."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return value
    try:  # bytes that were not UTF-8 (os.fsdecode's escapes): one U+FFFD each
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # any other lone surrogate
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def repair(properties: dict[str, Any]) -> dict[str, Any]:
    """`properties` as JSON holds them, in valid Unicode (a new dict)."""
    repaired: dict[str, Any] = _repaired(properties)
    return repaired


def _repaired(value: Any) -> Any:
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {valid_text(as_text(k)): _repaired(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_repaired(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, float):
        return value if value - value == 0 else None  # inf and nan are not JSON
    # Anything else JSON cannot hold, or not as it is: its text.
    return valid_text(as_text(value))


# -- what a caller hands us ---------------------------------------------------------
#
# The trackers take arguments from code we do not know: whatever they are, the call
# is recorded, once, and nothing raises into the caller. These say what we make of them.


def truth(value: object) -> bool:
    """`bool(value)`; False when it cannot say (its `__bool__` raises)."""
    try:
        return bool(value)
    except Exception:
        return False


def finite(value: object) -> float | None:
    """`value` as a finite float, or None when it is not a number (or inf, nan)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if number - number == 0 else None


def bounded(properties: dict[str, Any]) -> dict[str, Any]:
    """A tracker's `properties` with every text cut to `MAX_TEXT_CHARS` and every list
    or object to `MAX_ITEMS` entries, so that no argument makes a large event."""
    return {_short(k): _bounded(v) for k, v in itertools.islice(properties.items(), MAX_ITEMS)}


def _bounded(value: Any) -> Any:
    if isinstance(value, dict):
        return bounded(value)
    if isinstance(value, (list, tuple)):
        return [_bounded(v) for v in value[:MAX_ITEMS]]
    if value is None or isinstance(value, (bool, float)):
        return value  # inf and nan: see `_repaired`
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    return _short(value)


def _short(value: object) -> str:
    return as_text(value, MAX_TEXT_CHARS)[:MAX_TEXT_CHARS]


def as_text(value: object, limit: int | None = None) -> str:
    """`value` as the text an event carries; never raises. None is no text.

    Bytes are decoded as UTF-8 (what is not becomes U+FFFD), an exception is
    said as a traceback's last line says it (`ValueError: bad input`), anything
    else is its `str()`, or its type's name when that fails. With `limit`, bytes
    are cut before decoding, so their cost is bounded by what is kept.
    """
    try:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value[: limit * 4] if limit is not None else value)
            return data.decode("utf-8", "replace")
        if isinstance(value, BaseException):
            text = str(value)
            return f"{type(value).__name__}: {text}" if text else type(value).__name__
        return str(value)
    except Exception:
        return type(value).__name__


# -- properties ---------------------------------------------------------------------


def command_properties(
    command_name: str,
    cli_name: str,
    cli_version: str,
    duration_ms: float | None,
    error_message: str | None,
    context: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The properties of a `CLI execution ...` event (`error_message` already scrubbed).

    Beside the original names, the ones today's Arcade CLI sends (`duration_ms`,
    `runtime_language`, `runtime_version`), so that dashboards built on either keep
    working; `context` is the `org_id` / `project_id` of the credentials' context.
    """
    python = platform.python_version()
    properties: dict[str, Any] = {
        "command_name": command_name,
        "cli_name": cli_name,
        "cli_version": cli_version,
        "python_version": python,
        "runtime_language": "python",
        "runtime_version": python,
        "os_type": platform.system(),
        "os_release": platform.release(),
        "is_ci": is_ci(),
    }
    if duration_ms is not None:
        properties["duration"] = float(duration_ms)
        properties["duration_ms"] = round(duration_ms)
    if context:
        properties.update(context)
    if error_message is not None:
        properties["error_message"] = error_message
    return bounded(properties)  # whatever the tool gave its tracker


def runtime_properties(server_version: str) -> dict[str, Any]:
    """What every MCP server event says about the server and where it runs."""
    return {
        "arcade_mcp_server_version": server_version,
        "runtime_language": "python",
        "runtime_version": platform.python_version(),
        "os_type": platform.system(),
        "os_release": platform.release(),
        "is_ci": is_ci(),
    }


# -- versions -----------------------------------------------------------------------


def installed_version(distribution: str) -> str:
    """The installed version of `distribution`, or "unknown".

    Reads `Version:` from the distribution's `*.dist-info/METADATA` on `sys.path`
    directly: importing importlib.metadata (email, zipfile, csv, ...) would add
    about 12 ms to every tracked command. Falls back to importlib.metadata for
    anything else (eggs, zip imports).
    """
    prefix = distribution.replace("-", "_").replace(".", "_").lower() + "-"
    # Installed distributions live in site-packages: look there before the stdlib.
    entries = sorted(sys.path, key=lambda e: not e.endswith(("site-packages", "dist-packages")))
    for entry in entries:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and name.lower().startswith(prefix):
                found = _metadata_version(os.path.join(entry or ".", name, "METADATA"))
                if found:
                    return found
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def _metadata_version(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as metadata:
            for line in metadata:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
                if not line.strip():
                    return None  # the headers have ended
    except (OSError, UnicodeDecodeError):
        return None
    return None
