"""Entry point of the detached sender; see `arcade_usage._sender`."""

from __future__ import annotations

import contextlib

from arcade_usage._sender import main

if __name__ == "__main__":
    with contextlib.suppress(Exception):
        main()
