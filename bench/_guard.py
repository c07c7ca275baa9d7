"""Installed into the throw-away benchmark venvs (as `_arcade_bench_guard` plus a `.pth`).

Active only when `ARCADE_BENCH_GUARD_LOG` is set, in every Python process of the
venv (the CLI and its detached senders alike):

- An audit hook refuses any connection or name lookup that is not loopback and
  appends it to the log, so the benchmark can prove no real host was tried.
- With `ARCADE_BENCH_POSTHOG_HOST` set, arcade_core's hard-coded PostHog host
  (used by the shipped CLI and by arcade-mcp-server) is replaced: in
  `arcade_core.usage.usage_service.UsageService` (the tracking process) and in
  `posthog.client.Client` (its alias call and its detached sender).
- With `ARCADE_BENCH_PROCS_LOG` set, every Python process of the venv appends its
  pid and argv to that file at start, so a scenario can count the processes a
  tracker started (senders reaped by their own parent included).

The benchmark's own packages read the host from the environment and need no patch.
This module imports only os and sys at start-up (not even typing): it runs in every
measured process.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType
    from typing import Any

_LOOPBACK_NAMES = ("localhost", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1")


def _is_loopback(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    name = str(host).strip("[]").lower()
    return name in _LOOPBACK_NAMES or name.startswith("127.")


def _install_audit(log: str) -> None:
    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "socket.connect":
            address = args[1]
            if not isinstance(address, tuple):
                return  # AF_UNIX and friends: not a network
            host = address[0]
        elif event == "socket.getaddrinfo":
            host = args[0]
        else:
            return
        if _is_loopback(host):
            return
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{os.getpid()} {event} {host!r} {sys.argv!r}\n")
        raise OSError(f"arcade bench guard: non-loopback {host!r} refused")

    sys.addaudithook(hook)


def _patch_usage_service(module: Any, host: str) -> None:
    original = module.UsageService.__init__

    def init(self: Any, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        self.host = host

    module.UsageService.__init__ = init


def _patch_posthog_client(module: Any, host: str) -> None:
    original = module.Client.__init__

    def init(self: object, *args: object, **kwargs: object) -> None:
        if len(args) >= 2:
            args = (args[0], host, *args[2:])
        else:
            kwargs["host"] = host
        original(self, *args, **kwargs)

    module.Client.__init__ = init


def _install_redirect(host: str) -> None:
    import importlib.machinery

    patches = {
        "arcade_core.usage.usage_service": _patch_usage_service,
        "posthog.client": _patch_posthog_client,
    }

    class Finder:
        """Patches the named modules right after they execute."""

        @staticmethod
        def find_spec(
            name: str, path: Sequence[str] | None = None, target: object = None
        ) -> object:
            patch = patches.get(name)
            if patch is None:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_and_patch(module: ModuleType) -> None:
                exec_module(module)
                patch(module, host)

            spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, Finder)  # type: ignore[arg-type]


def _log_start(path: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{os.getpid()} {sys.argv!r}\n")


_installed: list[bool] = []


def install() -> None:
    """Run by the `.pth`, which a venv can process twice (`lib64` is a link to `lib`)."""
    if _installed:
        return
    _installed.append(True)
    procs = os.environ.get("ARCADE_BENCH_PROCS_LOG")
    if procs:
        _log_start(procs)
    log = os.environ.get("ARCADE_BENCH_GUARD_LOG")
    if log:
        _install_audit(log)
    host = os.environ.get("ARCADE_BENCH_POSTHOG_HOST")
    if host:
        _install_redirect(host)
