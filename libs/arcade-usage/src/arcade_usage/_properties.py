"""What an event says about the command: names, versions, platform, CI, a scrubbed error."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from typing import Any

SUCCEEDED = "CLI execution succeeded"
FAILED = "CLI execution failed"
MAX_ERROR_LENGTH = 300

# Variables that CI systems set; `CI` itself is checked for a false-ish value.
CI_VARIABLES = (
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "CIRCLECI",
    "TRAVIS",
    "BUILDKITE",
    "JENKINS_URL",
    "TEAMCITY_VERSION",
    "TF_BUILD",
    "BITBUCKET_BUILD_NUMBER",
    "CODEBUILD_BUILD_ID",
    "APPVEYOR",
    "DRONE",
    "SEMAPHORE",
    "BUILD_BUILDID",
    "CF_BUILD_ID",
)


def is_ci() -> bool:
    """True when a CI system runs us, judged by the variables the common ones set."""
    ci = os.environ.get("CI", "").strip().lower()
    if ci and ci not in ("0", "false", "no", "off"):
        return True
    return any(os.environ.get(name) for name in CI_VARIABLES)


def command_properties(
    command_name: str,
    cli_version: str,
    duration_ms: float | None,
    error_message: str | None,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "command_name": command_name,
        "cli_version": cli_version,
        "python_version": platform.python_version(),
        "os_type": platform.system(),
        "os_release": platform.release(),
        "is_ci": is_ci(),
    }
    if duration_ms is not None:
        properties["duration"] = float(duration_ms)
    if error_message is not None:
        properties["error_message"] = error_message
    return properties


def scrub(message: str, secrets: Iterable[str | None] = (), home: str | None = None) -> str:
    """`message` without secrets, emails or the home path, at most 300 characters.

    Known secrets (the API key, the email) are removed verbatim; anything shaped
    like an email, a bearer token or a `key=value` credential is masked too, for
    the secrets we were not told about.
    """
    import re

    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        message = message.replace(secret, "***")
    message = re.sub(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", "<email>", message)
    message = re.sub(r"(?i)\b(bearer)\s+\S+", r"\1 ***", message)
    message = re.sub(
        r"(?i)\b((?:api[_-]?)?key|token|secret|password)(\s*[=:]\s*)[^\s,;&]+", r"\1\2***", message
    )
    home = home if home is not None else os.path.expanduser("~")
    if home and home not in (os.sep, "~"):
        message = message.replace(home, "~")
    message = message.strip()
    if len(message) > MAX_ERROR_LENGTH:
        message = message[: MAX_ERROR_LENGTH - 3] + "..."
    return message
