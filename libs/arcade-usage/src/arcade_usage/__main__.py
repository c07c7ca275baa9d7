"""Entry point of the detached sender; see `arcade_usage._sender`."""

from __future__ import annotations

from arcade_usage._sender import main

if __name__ == "__main__":
    try:  # noqa: SIM105 - contextlib is not worth importing here
        main()
    except Exception:  # the sender never prints; the outbox keeps what it had
        pass
