"""The one-time notice shown by the first tracked command on a machine."""

from __future__ import annotations

import sys

NOTICE = """\
Arcade collects anonymous usage data: the command name, whether it succeeded, how long
it took, the error if any, and the versions of arcade, Python and your OS. It helps us
improve the CLI; it never includes your API key, files or arguments.
Opt out with ARCADE_USAGE_TRACKING=0 or `arcade usage disable`.
"""


def print_notice() -> None:
    """Write the notice to stderr, so that nothing is added to a command's output."""
    try:
        sys.stderr.write(NOTICE)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # no usable stderr (closed, detached): the notice is not worth an error
