"""`python -m arcade_cli`, the same as the `arcade` command."""

from __future__ import annotations

from arcade_cli.main import main

if __name__ == "__main__":
    main()
