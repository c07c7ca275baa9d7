"""What each platform's files are made of: Windows' choices, made and checked on Linux.

The choices (open flags, a look before opening, an ACL, a retried `os.replace`,
the lock) are functions of the platform passed to them; here they are asked for
Windows' answer. `read_regular` also runs for real in a process with Windows'
`os` surface (`windows_site/sitecustomize.py`), where its Windows path is the
one taken.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import types
from pathlib import Path

import filelock
import pytest

from arcade_identity import _files
from helpers import lock_held
from windows_surface import surface_env

ON_WINDOWS = pytest.mark.skipif(
    sys.platform == "win32", reason="on Windows the suite runs with Windows' own os and icacls"
)

ONLY_ON_WINDOWS = pytest.mark.skipif(
    sys.platform != "win32", reason="Windows' own ACLs, sharing rules and locks"
)

WINDOWS_OS = types.SimpleNamespace(O_RDONLY=0, O_WRONLY=1, O_BINARY=0x8000)
"""What Windows' `os` has of the names the flags are made of."""


# -- reading: flags, or a look before opening ----------------------------------------------


def test_where_os_has_the_flags_the_open_itself_refuses_symlinks_and_fifos() -> None:
    if not hasattr(os, "O_NOFOLLOW"):
        pytest.skip("this platform's os has no O_NOFOLLOW")
    assert _files.read_plan(follow_symlinks=False) == (
        os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW,
        False,
    )
    assert _files.read_plan(follow_symlinks=True) == (os.O_RDONLY | os.O_NONBLOCK, False)


@pytest.mark.parametrize("follow_symlinks", [False, True])
def test_on_windows_the_path_is_looked_at_before_it_is_opened(follow_symlinks: bool) -> None:
    assert _files.read_plan(follow_symlinks, WINDOWS_OS) == (0x8000, True)


READ_EVERYTHING = """\
import json, os, sys
from arcade_identity._files import NotRegularFileError, read_regular
here = sys.argv[1]
answers = {"has O_NOFOLLOW": hasattr(os, "O_NOFOLLOW"), "has O_NONBLOCK": hasattr(os, "O_NONBLOCK")}
for name in ("file", "link", "dangling", "fifo", "dir", "missing"):
    for follow in (False, True):
        try:
            found = read_regular(os.path.join(here, name), limit=100, follow_symlinks=follow)
            answer = None if found is None else found[0].decode()
        except OSError as exc:
            answer = type(exc).__name__
        answers[f"{name}, follow={follow}"] = answer
print(json.dumps(answers))
"""


@ON_WINDOWS
def test_read_regular_with_windows_os_surface_refuses_what_it_refuses_on_linux(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("content")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()

    def answers(env: dict[str, str]) -> dict[str, object]:
        result = subprocess.run(
            [sys.executable, "-c", READ_EVERYTHING, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,  # a FIFO opened without O_NONBLOCK would block for ever
            env={**os.environ, **env},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        found: dict[str, object] = json.loads(result.stdout)
        return found

    on_linux = answers({})
    on_windows = answers(surface_env())

    assert on_linux.pop("has O_NOFOLLOW") is on_linux.pop("has O_NONBLOCK") is True
    assert on_windows.pop("has O_NOFOLLOW") is on_windows.pop("has O_NONBLOCK") is False
    assert (
        on_windows
        == on_linux
        == {
            "file, follow=False": "content",
            "file, follow=True": "content",
            "link, follow=False": "NotRegularFileError",
            "link, follow=True": "content",
            "dangling, follow=False": "NotRegularFileError",
            "dangling, follow=True": None,
            "fifo, follow=False": "NotRegularFileError",
            "fifo, follow=True": "NotRegularFileError",
            "dir, follow=False": "IsADirectoryError",
            "dir, follow=True": "IsADirectoryError",
            "missing, follow=False": None,
            "missing, follow=True": None,
        }
    )


SWAP_BEFORE_OPEN = """\
import os, sys
from arcade_identity._files import NotRegularFileError, read_regular
target, elsewhere = sys.argv[1], sys.argv[2]
real_open = os.open
def swapping_open(path, *args, **kwargs):
    # Between the look and the open, the file becomes a symlink to someone else's.
    os.unlink(target)
    os.symlink(elsewhere, target)
    os.open = real_open
    return real_open(path, *args, **kwargs)
os.open = swapping_open
try:
    print(read_regular(target, limit=100, follow_symlinks=False))
except NotRegularFileError:
    print("refused")
"""


@ON_WINDOWS
def test_with_windows_os_surface_a_symlink_swapped_in_after_the_look_is_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "usage.json").write_text("ours")
    (tmp_path / "theirs").write_text("NOT OURS")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SWAP_BEFORE_OPEN,
            str(tmp_path / "usage.json"),
            str(tmp_path / "theirs"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **surface_env()},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


# -- private files: modes, or an ACL ---------------------------------------------------------


@ON_WINDOWS
def test_modes_are_tightened_where_there_are_modes_and_left_alone_on_windows(
    tmp_path: Path,
) -> None:
    loose = tmp_path / "loose"
    loose.write_text("x")
    loose.chmod(0o644)

    _files.tighten(loose, loose.stat().st_mode, windows=True)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o644
    _files.tighten(loose, loose.stat().st_mode, windows=False)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600

    loose.chmod(0o644)
    fd = os.open(loose, os.O_RDONLY)
    try:
        _files.tighten(fd, os.fstat(fd).st_mode, windows=False)  # by descriptor, no fchmod
    finally:
        os.close(fd)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600


WINDOWS_USER = {"USERNAME": "alice", "USERDOMAIN": "HOST", "SystemRoot": r"D:\Win"}


def test_the_acl_leaves_a_file_to_the_user_alone_in_one_icacls_call() -> None:
    path = r"C:\Users\alice\.arcade\usage.json"
    icacls = os.path.join(r"D:\Win", "System32", "icacls.exe")
    assert _files.acl_command(path, windows=True, environ=WINDOWS_USER) == [
        icacls,
        path,
        "/inheritance:r",
        "/grant:r",
        "HOST\\alice:F",
    ]
    # A directory's grant is inherited by the files and folders made in it.
    assert _files.acl_command(path, directory=True, windows=True, environ=WINDOWS_USER) == [
        icacls,
        path,
        "/inheritance:r",
        "/grant:r",
        "HOST\\alice:(OI)(CI)F",
    ]
    alone = _files.acl_command(path, windows=True, environ={"USERNAME": "alice"})
    assert alone is not None
    assert alone[-1] == "alice:F"


def test_no_acl_is_set_where_modes_do_it_or_no_user_is_known() -> None:
    assert _files.acl_command("f", windows=False, environ=WINDOWS_USER) is None
    assert _files.acl_command("f", windows=True, environ={"USERDOMAIN": "HOST"}) is None


def test_icacls_and_every_console_program_start_without_a_console_window() -> None:
    assert _files.no_window_flags(windows=True) == 0x08000000  # CREATE_NO_WINDOW
    assert _files.no_window_flags(windows=False) == 0


FAKE_ICACLS = """\
#!/bin/sh
# Records what it was asked, and how many bytes the file held when it was.
if [ -d "$1" ]; then size=dir; else size=$(wc -c < "$1"); fi
printf '%s\\n' "$size" "$@" >> "$(dirname "$0")/calls"
exit "${ICACLS_EXIT:-0}"
"""


@pytest.fixture
def icacls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in `icacls.exe` where the ACL command looks for it; returns its call log."""
    system32 = tmp_path / "windows" / "System32"
    system32.mkdir(parents=True)
    program = system32 / "icacls.exe"
    program.write_text(FAKE_ICACLS)
    program.chmod(0o755)
    monkeypatch.setenv("SystemRoot", str(tmp_path / "windows"))
    monkeypatch.setenv("USERNAME", "alice")
    monkeypatch.setenv("USERDOMAIN", "HOST")
    return system32 / "calls"


@ON_WINDOWS
def test_a_windows_write_makes_the_file_private_before_a_byte_is_in_it(
    icacls: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "arcade"
    target = directory / "usage.json"

    _files.write_atomic(target, b'{"anon_id": "x"}\n', windows=True)

    assert target.read_bytes() == b'{"anon_id": "x"}\n'
    assert sorted(p.name for p in directory.iterdir()) == ["usage.json"]  # no temp file left
    lines = icacls.read_text().splitlines()
    # The new directory first (inherited by what is made in it), then the temp file, empty.
    assert lines[:5] == [
        "dir",
        str(directory),
        "/inheritance:r",
        "/grant:r",
        "HOST\\alice:(OI)(CI)F",
    ]
    size, temp, *grant = lines[5:]
    assert (size.strip(), grant) == ("0", ["/inheritance:r", "/grant:r", "HOST\\alice:F"])
    assert Path(temp).parent == directory
    assert Path(temp).name.startswith(".usage.json.")
    assert temp.endswith(".tmp")


@ON_WINDOWS
@pytest.mark.parametrize("failure", ["exit", "missing"])
def test_an_acl_that_cannot_be_set_does_not_stop_the_write(
    icacls: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    if failure == "exit":
        monkeypatch.setenv("ICACLS_EXIT", "5")  # icacls' "access denied"
    else:
        monkeypatch.setenv("SystemRoot", str(tmp_path / "no windows here"))
    target = tmp_path / "arcade" / "usage.json"

    _files.write_atomic(target, b"data", windows=True)

    assert target.read_bytes() == b"data"


# -- os.replace onto a file another process holds open ---------------------------------------


class HeldOpen:
    """`os.replace` as Windows answers it while another process has the target open."""

    def __init__(self, times: int) -> None:
        self.left = times
        self.calls = 0

    def __call__(self, source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise PermissionError(13, "Access is denied", os.fspath(target))
        os.replace(source, target)


def test_on_windows_a_replace_waits_for_a_holder_that_lets_go(tmp_path: Path) -> None:
    (tmp_path / "new").write_text("new")
    (tmp_path / "old").write_text("old")
    slept: list[float] = []

    _files.replace_file(
        tmp_path / "new", tmp_path / "old", windows=True, attempt=HeldOpen(3), sleep=slept.append
    )

    assert (tmp_path / "old").read_text() == "new"
    assert slept == list(_files.REPLACE_RETRY_DELAYS[:3])


def test_on_windows_a_replace_gives_up_after_about_a_second(tmp_path: Path) -> None:
    held = HeldOpen(times=1000)
    slept: list[float] = []

    with pytest.raises(PermissionError):
        _files.replace_file(
            tmp_path / "a", tmp_path / "b", windows=True, attempt=held, sleep=slept.append
        )

    assert held.calls == len(_files.REPLACE_RETRY_DELAYS) + 1
    assert 0.9 <= sum(slept) <= 1.1


def test_elsewhere_a_refused_replace_is_final_at_once(tmp_path: Path) -> None:
    held = HeldOpen(times=1)
    slept: list[float] = []

    with pytest.raises(PermissionError):
        _files.replace_file(
            tmp_path / "a", tmp_path / "b", windows=False, attempt=held, sleep=slept.append
        )

    assert (held.calls, slept) == (1, [])


def test_on_windows_only_a_held_file_is_waited_for(tmp_path: Path) -> None:
    slept: list[float] = []

    with pytest.raises(FileNotFoundError):
        _files.replace_file(tmp_path / "absent", tmp_path / "b", windows=True, sleep=slept.append)

    assert slept == []


def test_on_windows_a_remove_waits_for_a_holder_as_a_replace_does(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("cloud: {}")
    held = HeldOpen(times=2)
    slept: list[float] = []

    _files.remove_file(
        credentials,
        windows=True,
        attempt=lambda path: held(path, tmp_path / "gone"),
        sleep=slept.append,
    )

    assert not credentials.exists()
    assert (held.calls, slept) == (3, list(_files.REPLACE_RETRY_DELAYS[:2]))


# -- the lock ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "lock"),
    [
        ("win32", filelock.WindowsFileLock),
        ("linux", filelock.UnixFileLock),
        ("darwin", filelock.UnixFileLock),
    ],
)
def test_the_lock_is_one_the_kernel_releases_with_its_holder(
    tmp_path: Path, platform: str, lock: type[filelock.BaseFileLock]
) -> None:
    if platform != "win32":
        pytest.importorskip("fcntl")
    assert type(_files.file_lock(tmp_path / "x.lock", 1.0, platform=platform)) is lock


# -- on Windows itself (the GitHub Actions workflow) -----------------------------------------


@ONLY_ON_WINDOWS
def test_on_windows_a_written_file_is_the_users_alone(tmp_path: Path) -> None:
    target = tmp_path / "arcade" / "usage.json"

    _files.write_atomic(target, b"{}")

    listing = subprocess.run(
        ["icacls", str(target)], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    entries = listing.split("Successfully processed")[0].replace(str(target), "").split()
    assert len(entries) == 1, listing  # one entry: no inherited ones, no group
    assert entries[0].lower().endswith(f"\\{os.environ['USERNAME'].lower()}:(f)"), listing


HOLD_OPEN = """\
import sys, time
with open(sys.argv[1], "rb"):
    print("open", flush=True)
    time.sleep(0.3)  # how long a reader holds it, not a synchronisation
"""


@ONLY_ON_WINDOWS
def test_on_windows_a_write_waits_for_a_reader_holding_the_file_open(tmp_path: Path) -> None:
    target = tmp_path / "arcade" / "usage.json"
    _files.write_atomic(target, b"old")
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline() == "open\n"
        _files.write_atomic(target, b"new")
    finally:
        reader.wait(timeout=30)
        if reader.stdout is not None:
            reader.stdout.close()

    assert target.read_bytes() == b"new"


@ONLY_ON_WINDOWS
def test_on_windows_the_lock_keeps_out_another_process(tmp_path: Path) -> None:
    path = tmp_path / "usage.json.lock"
    with lock_held(path):
        lock = _files.file_lock(path, 0.2)
        assert type(lock) is filelock.WindowsFileLock
        with pytest.raises(filelock.Timeout):
            lock.acquire()
    with _files.file_lock(path, 5):
        pass
