"""What a user sees when the world is hostile: one line and a non-zero exit, never a traceback.

Closed or broken standard streams, Ctrl-C at any moment, a full or read-only
disk, no home directory: each is made real (a shell's `>&-`, a pipe whose
reader is gone, SIGINT sent to the running process, a tmpfs in a private
mount namespace, a uid without a passwd entry).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli.accounts import Account
from cli.live_arcade import LiveArcade
from helpers import ARCADE, assert_one_line_error, sender_pids, wait_until
from servers import FakeCloud, FakePostHog

pytestmark = pytest.mark.timeout(60)


@functools.cache
def can_unshare(*flags: str) -> bool:
    """Whether this machine lets us start a process in new namespaces (util-linux unshare)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", *flags, "true"], capture_output=True, check=False)
    return probe.returncode == 0


# A private user namespace (our uid seen as root, or as a uid without a passwd
# entry) and mount namespace: no root needed where user namespaces are allowed.
AS_ROOT_WITH_OWN_MOUNTS = ("-U", "--map-root-user", "-m", "--propagation", "private")
NOBODY = 54321  # a uid with no passwd entry: HOME unset, getpwuid() fails
AS_NOBODY = ("-U", f"--map-user={NOBODY}", f"--map-group={NOBODY}")


def skip_unless_unshare(*flags: str) -> None:
    if not can_unshare(*flags):
        pytest.skip(f"cannot run `unshare {' '.join(flags)}` here")


def in_shell(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `sh -c script` with `$1` = the arcade executable, then `args`: redirections as typed."""
    return subprocess.run(
        ["sh", "-c", script, "sh", str(ARCADE), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )


def assert_interrupted(code: int, stderr: str) -> None:
    assert code == 130, stderr
    assert stderr == "Aborted.\n"


# -- standard streams ----------------------------------------------------------------------


@pytest.mark.parametrize("args", [["usage", "status"], ["--version"], ["--help"]])
def test_a_closed_stdout_is_one_line_and_nothing_is_done(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path, args: list[str]
) -> None:
    result = in_shell('"$@" >&-', *args)
    assert_one_line_error(result, "standard output is closed")
    assert sender_pids(work_dir) == []
    assert posthog.requests == 0
    assert not arcade_dir.exists()


@pytest.mark.parametrize("args", [["usage", "status"], ["--version"], ["--help"]])
def test_a_reader_that_went_away_ends_it_quietly(
    posthog: FakePostHog, first_run: str, args: list[str]
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the `head` of `arcade ... | head` has already exited
    try:
        result = subprocess.run(
            [str(ARCADE), *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)
    # As a Unix tool killed by SIGPIPE: nothing said (nobody reads it), status 141.
    assert (result.returncode, result.stderr) == (141, "")


def test_a_closed_stderr_changes_nothing_else(
    posthog: FakePostHog, work_dir: Path, cloud: FakeCloud
) -> None:
    # The first run's notice goes to stderr, which is closed: no crash, the screen is whole.
    status = in_shell('"$@" 2>&-', "usage", "status")
    assert status.returncode == 0
    assert status.stdout.startswith("Tracking:         on (the default)\n")
    assert len(status.stdout.splitlines()) == 5
    whoami = in_shell('"$@" 2>&-', "whoami")  # fails: its message has nowhere to go
    assert whoami.returncode == 1
    assert whoami.stdout == ""
    both = in_shell('"$@" >&- 2>&-', "usage", "status")
    assert both.returncode == 1
    wait_until(lambda: len(posthog.command_events()) == 2)
    assert [e["properties"]["command_name"] for e in posthog.command_events()] == [
        "usage.status",
        "whoami",
    ]


# -- Ctrl-C --------------------------------------------------------------------------------


def test_ctrl_c_while_waiting_for_the_browser(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str
) -> None:
    with LiveArcade("login", "--no-browser", "--timeout", "30") as arcade:
        arcade.wait_for_line("http")
        arcade.interrupt()
        code, _, stderr = arcade.finish()
    assert_interrupted(code, stderr)
    assert not (arcade_dir / "credentials.yaml").exists()
    [failed] = wait_until(lambda: posthog.events("CLI execution failed"))
    assert failed["properties"]["command_name"] == "login"
    assert failed["distinct_id"] == first_run


def test_ctrl_c_while_the_tracker_waits_for_the_cloud(
    posthog: FakePostHog, cloud: FakeCloud, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    # Credentials written by hand, not linked yet: after its output, the command's
    # tracker looks the principal up, and Arcade Cloud hangs.
    (arcade_dir / "credentials.yaml").write_text(
        yaml.safe_dump({"cloud": {"api": {"key": account_a.key}}})
    )
    cloud.mode = "hang"
    with LiveArcade("usage", "status") as arcade:
        arcade.wait_for_line("Outbox:")
        # Inside the tracker's lookup: its request is in (or, on a loaded machine, it is
        # still importing and parsing, well inside its 1.9 s budget after a second).
        with contextlib.suppress(AssertionError):
            wait_until(lambda: cloud.validations >= 1, timeout=1.0)
        assert arcade.proc.poll() is None
        arcade.interrupt()
        code, stdout, stderr = arcade.finish(timeout=5)
    assert_interrupted(code, stderr)
    assert len(stdout.splitlines()) == 5
    # The event was decided before Ctrl-C: it is still queued, as the anonymous user.
    wait_until(lambda: len(posthog.command_events()) == 2)
    event = posthog.command_events()[1]
    assert event["properties"]["command_name"] == "usage.status"
    assert event["distinct_id"] == first_run
    assert posthog.aliases() == []


# -- the disk ------------------------------------------------------------------------------

# The home holding the configuration folder (ARCADE_WORK_DIR, not created yet) becomes,
# for one arcade process only, a full tmpfs or a read-only view.
FULL_DISK = (
    'mount -t tmpfs -o size=16k tmpfs "$HOME" && '
    '{ cat /dev/zero > "$HOME/filler" 2>/dev/null; exec "$@"; }'
)
READ_ONLY = 'mount --bind "$HOME" "$HOME" && mount -o remount,ro,bind "$HOME" && exec "$@"'


def in_mount_namespace(setup: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", *AS_ROOT_WITH_OWN_MOUNTS, "sh", "-c", setup, "sh", str(ARCADE), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("setup", "reason"),
    [(FULL_DISK, "No space left on device"), (READ_ONLY, "Read-only file system")],
    ids=["full", "read-only"],
)
def test_login_and_disable_on_a_disk_that_takes_no_write(
    posthog: FakePostHog, account_a: Account, work_dir: Path, setup: str, reason: str
) -> None:
    skip_unless_unshare(*AS_ROOT_WITH_OWN_MOUNTS)
    login = in_mount_namespace(setup, "login", "--api-key", account_a.key)
    assert_one_line_error(login, "cannot save credentials", reason)
    assert login.stdout == ""
    disable = in_mount_namespace(setup, "usage", "disable")
    assert_one_line_error(disable, "cannot disable tracking", reason)
    assert disable.stdout == ""
    # Tracking could not keep an identity there either: it quietly did nothing.
    assert sender_pids(work_dir) == []
    assert posthog.requests == 0
    assert not work_dir.exists()


def test_logout_of_a_credentials_file_it_cannot_read_keeps_it(
    posthog: FakePostHog, arcade_dir: Path
) -> None:
    """Run as a user the file is not readable by (a user namespace without our uid), in a
    folder that user may write to: logout could delete what it cannot read, and must not."""
    skip_unless_unshare("-U")
    arcade_dir.mkdir(mode=0o700, parents=True)
    credentials = arcade_dir / "credentials.yaml"
    credentials.write_text("cloud:\n  api_key: arc_key_someone_0123\n")
    credentials.chmod(0)
    arcade_dir.chmod(0o777)

    logout = subprocess.run(
        ["unshare", "-U", str(ARCADE), "logout"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "ARCADE_USAGE_TRACKING": "0"},  # no notice, no files of its own
        check=False,
    )

    assert_one_line_error(
        logout, "cannot remove credentials", str(credentials), "Permission denied"
    )
    assert credentials.exists()


# -- no home directory ---------------------------------------------------------------------


def test_no_home_directory_tracks_nothing_and_the_commands_that_need_no_file_work(
    posthog: FakePostHog,
) -> None:
    skip_unless_unshare(*AS_NOBODY)
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "ARCADE_WORK_DIR")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["unshare", *AS_NOBODY, str(ARCADE), *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            cwd="/",
            check=False,
        )

    probe = subprocess.run(
        ["unshare", *AS_NOBODY, sys.executable, "-c", "import os, pwd; pwd.getpwuid(os.getuid())"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "KeyError" in probe.stderr  # no passwd entry, really
    version = run("--version")
    assert version.returncode == 0, version.stderr
    assert version.stderr == ""
    help_ = run("--help")
    assert help_.returncode == 0, help_.stderr
    assert help_.stdout.startswith("Usage: arcade ")
    status = run("usage", "status")
    assert status.returncode == 0, status.stderr
    assert status.stderr == ""
    lines = status.stdout.splitlines()
    assert lines[0].startswith("Tracking:         off (")
    assert lines[1:4] == [
        "Anonymous id:     none yet",
        "Linked principal: none",
        "Identity file:    none (unusable: no home directory and no ARCADE_WORK_DIR)",
    ]
    assert lines[4] == "Outbox:           0 event(s) waiting"
    data = json.loads(run("usage", "status", "--json").stdout)
    assert (data["tracking"], data["identity_file"], data["outbox_waiting"]) == (False, None, 0)
    whoami = run("whoami")
    assert whoami.returncode == 1
    assert "Traceback" not in whoami.stderr
    assert len(whoami.stderr.splitlines()) == 1
    assert posthog.requests == 0
