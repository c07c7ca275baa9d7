"""The tracker the arcade command reports through, shared by its commands."""

from __future__ import annotations

from arcade_usage import CommandTracker

tracker = CommandTracker()
"""Reports as arcade-cli's installed version; its `identity` is the process's one."""
