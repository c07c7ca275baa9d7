"""Where the Arcade configuration folder is, and everything of ours that lives in it.

The folder is `$ARCADE_WORK_DIR` itself, as arcade-core 4.23 reads it, else
`~/.arcade`: every Arcade tool on the machine finds the same identity and the
same credentials there. Below, `.arcade` means that folder. It holds, for both
arcade-identity and arcade-usage:

========================  ===============  ====================================================
name                      owner            what
========================  ===============  ====================================================
`usage.json`              arcade-identity  `anon_id` and `linked_principal_id` (0600, atomic)
`usage.json.lock`         arcade-identity  sidecar lock held for every read-modify-write
`credentials.yaml`        whichever CLI    Arcade Cloud credentials (arcade-core's `Config`, or
                          logged in        our `arcade login`); tracking only reads it (0600)
`principal_lookup.json`   arcade-identity  the last failed principal lookup (5 min memory)
`usage_outbox/`           arcade-usage     events waiting for PostHog, and the outbox's lock
`usage_disabled`          arcade-usage     the persisted opt-out (`arcade usage disable`)
========================  ===============  ====================================================

plus the `.<name>.<pid>.<random>.tmp` files of an atomic write in progress.
The directory itself is 0700. Nothing else of ours lives there.
"""

from __future__ import annotations

import os

from arcade_identity.exceptions import HomeNotFoundError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pathlib import Path

ARCADE_DIR = ".arcade"
USAGE_FILE = "usage.json"
USAGE_LOCK_FILE = "usage.json.lock"
CREDENTIALS_FILE = "credentials.yaml"
LOOKUP_FAILURE_FILE = "principal_lookup.json"
OUTBOX_DIR = "usage_outbox"
DISABLED_FILE = "usage_disabled"

DEFAULT_CLOUD_URL = "https://cloud.arcade.dev"


def arcade_dir(work_dir: str | os.PathLike[str] | None = None) -> Path:
    """The configuration folder as an absolute path: `work_dir`, else `$ARCADE_WORK_DIR`,
    else `~/.arcade`.

    A leading `~` is the home directory; a relative work dir is taken relative to
    the current directory now, so that a caller that keeps the result (or hands it
    to a child) keeps one place.
    Raises HomeNotFoundError when neither a work dir nor a home directory exists.
    """
    from pathlib import Path  # here: the detached sender needs only the names above

    if work_dir is None or os.fspath(work_dir) == "":
        work_dir = os.environ.get("ARCADE_WORK_DIR") or os.path.join(_home(), ARCADE_DIR)
    folder = os.fspath(work_dir)
    if folder.startswith("~"):
        # `~/cfg` means the home's `cfg` even where no shell expanded it (a .env file, a
        # service, Windows' cmd), as arcade-core reads it: one folder for both.
        folder = os.path.expanduser(folder)
        if folder.startswith("~"):
            raise HomeNotFoundError(f"ARCADE_WORK_DIR {folder!r} names a home that is not found")
    return Path(os.path.abspath(folder))


def _home() -> str:
    # os.path.expanduser returns "~" unchanged when neither HOME nor a passwd entry
    # gives a home; Path.home() raises RuntimeError or KeyError depending on the version.
    try:
        home = os.path.expanduser("~")
    except (KeyError, RuntimeError, ImportError) as exc:
        raise HomeNotFoundError("no home directory and no ARCADE_WORK_DIR") from exc
    if not os.path.isabs(home):
        raise HomeNotFoundError("no home directory and no ARCADE_WORK_DIR")
    return home
