"""Where the `.arcade` directory and its files live."""

from __future__ import annotations

import os
from pathlib import Path

USAGE_FILE = "usage.json"
CREDENTIALS_FILE = "credentials.yaml"
LOOKUP_FAILURE_FILE = "principal_lookup.json"
DEFAULT_CLOUD_URL = "https://cloud.arcade.dev"


def arcade_dir(work_dir: str | os.PathLike[str] | None = None) -> Path:
    """`$ARCADE_WORK_DIR/.arcade`, the work dir defaulting to the home directory."""
    if work_dir is None:
        work_dir = os.environ.get("ARCADE_WORK_DIR") or Path.home()
    return Path(work_dir) / ".arcade"
