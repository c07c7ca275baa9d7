"""The console-script entry point of `arcade`."""

from __future__ import annotations

import sys


def main() -> None:
    """Run `arcade`. A bare `--version` answers without loading the application."""
    if sys.argv[1:] == ["--version"]:
        from arcade_usage import installed_version

        print(installed_version("arcade-cli"))
        return
    from arcade_cli.app import app

    app(prog_name="arcade")


if __name__ == "__main__":
    main()
