"""Asking Arcade Cloud who an API key belongs to: answers, refusals, and a cloud on a bad day."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from arcade_identity import Credentials, UsageIdentity, save_credentials
from helpers import Stopwatch, inconclusive, overloaded, starved
from identity._helpers import RunPython
from servers import FakeCloud

# Times the lookup alone, not the interpreter's start-up.
TIMED_LOOKUP = """\
i = UsageIdentity(clock=lambda: time.time() + {offset}, lookup_timeout={budget})
start = time.monotonic()
principal = i.get_principal_id()
emit(
    principal=principal,
    elapsed=time.monotonic() - start,
    distinct=i.get_distinct_id(),
    heavy=heavy(),
)
"""

FIVE_MINUTES_LATER = 301.0


def test_lookup_finds_the_principal(cloud: FakeCloud) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    save_credentials(Credentials("key-a", "a@example.com"))

    identity = UsageIdentity()
    assert identity.get_principal_id() == "prn_a"
    assert identity.get_distinct_id() == "prn_a"
    assert identity.should_alias() is True  # found, but anon_id is not linked to it yet
    assert cloud.validations == 1


def test_rejected_key_means_anonymous(cloud: FakeCloud) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    save_credentials(Credentials("key-revoked"))

    identity = UsageIdentity()
    assert identity.get_principal_id() is None
    assert identity.should_alias() is False
    assert identity.get_distinct_id() == identity.anon_id
    assert cloud.validations == 1


@pytest.mark.parametrize("mode", ["ok", "error"])
def test_at_most_one_lookup_per_process(cloud: FakeCloud, mode: str) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    cloud.mode = mode
    save_credentials(Credentials("key-a"))
    expected = "prn_a" if mode == "ok" else None

    for _ in range(2):
        identity = UsageIdentity()
        assert identity.get_principal_id() == expected
        assert identity.should_alias() is (expected is not None)
        assert identity.get_principal_id() == expected

    assert cloud.validations == 1


def _answer_once(sock: socket.socket, body: dict[str, Any], asked: list[bytes]) -> threading.Thread:
    """Accept one connection on `sock` and answer it with a JSON 200, recording the request."""

    def serve() -> None:
        sock.settimeout(10)
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
            asked.append(request)
            data = json.dumps(body).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_failed_lookup_is_remembered_without_the_password_of_the_cloud_url(
    refusing_port: socket.socket, monkeypatch: pytest.MonkeyPatch, work_dir: Path
) -> None:
    host, port = refusing_port.getsockname()
    monkeypatch.setenv("ARCADE_CLOUD_URL", f"http://bob:pw-s3cret-77@{host}:{port}")
    save_credentials(Credentials("key-a"))
    assert UsageIdentity().get_principal_id() is None  # refused at once
    assert (work_dir / "principal_lookup.json").exists()
    for path in work_dir.rglob("*"):
        if path.is_file() and path.name != "credentials.yaml":
            assert b"pw-s3cret-77" not in path.read_bytes(), path.name
    # Remembered all the same: the next process does not knock again.
    refusing_port.listen(1)
    assert UsageIdentity().get_principal_id() is None
    refusing_port.setblocking(False)
    with pytest.raises(BlockingIOError):  # nobody knocked
        refusing_port.accept()


@pytest.mark.timeout(60)
@pytest.mark.may_be_inconclusive
@pytest.mark.parametrize("failure", ["hang", "error", "refused"])
def test_failed_lookup_is_not_repeated_for_five_minutes(
    cloud: FakeCloud,
    refusing_port: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    run_python: RunPython,
    work_dir: Path,
    failure: str,
) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    if failure == "refused":
        host, port = refusing_port.getsockname()
        monkeypatch.setenv("ARCADE_CLOUD_URL", f"http://{host}:{port}")
    else:
        cloud.mode = failure
    save_credentials(Credentials("key-a"))

    # The first command waits at most the 2 s budget, then carries on anonymously.
    # (Timed net of the waits for a CPU a busy machine adds: helpers.Stopwatch.)
    identity = UsageIdentity()
    with Stopwatch() as watch:
        assert identity.get_principal_id() is None
    assert identity.get_distinct_id() == identity.anon_id
    if failure == "hang":
        assert watch.elapsed >= 1.8, watch
        watch.assert_within(2.5, "a lookup against a hanging Arcade Cloud")
    else:
        watch.assert_within(1.0, "a lookup that fails at once")
    asked = cloud.validations
    if failure != "refused" and asked == 0 and (why := overloaded()):
        inconclusive(f"the lookup gave up before its request was made, at {why}")
    assert asked == (0 if failure == "refused" else 1)
    if not (work_dir / "principal_lookup.json").exists() and (why := starved(watch)):
        # The request went out with less than a second left: not Cloud's failure, by design.
        inconclusive(f"the lookup's request went out too late to be answered, at {why}")
    if failure == "refused":
        refusing_port.listen(4)  # from now on, a connection attempt would be accepted

    # The next command, in a new process, does not wait or ask again, nor even
    # parse the credentials.
    out = run_python(TIMED_LOOKUP.format(offset=0.0, budget=60))
    assert out["principal"] is None
    assert out["elapsed"] < 0.5
    assert out["heavy"] == []
    assert cloud.validations == asked
    if failure == "refused":
        refusing_port.setblocking(False)
        with pytest.raises(BlockingIOError):  # nobody knocked
            refusing_port.accept()
        refusing_port.setblocking(True)

    # Five minutes later the cloud is asked again, and has recovered.
    cloud.mode = "ok"
    knocks: list[bytes] = []
    if failure == "refused":
        server = _answer_once(refusing_port, {"data": {"principal_id": "prn_a"}}, knocks)
    out = run_python(TIMED_LOOKUP.format(offset=FIVE_MINUTES_LATER, budget=60))
    assert out["principal"] == "prn_a"
    assert out["distinct"] == "prn_a"
    if failure == "refused":
        server.join(10)
        assert len(knocks) == 1
        assert b"Authorization: Bearer key-a" in knocks[0]
    else:
        assert cloud.validations == asked + 1


@pytest.mark.timeout(60)
def test_remembered_failure_is_for_that_key_only(cloud: FakeCloud, run_python: RunPython) -> None:
    cloud.add_account("key-b", "prn_b", "b@example.com")
    cloud.mode = "error"
    save_credentials(Credentials("key-a"))
    assert UsageIdentity().get_principal_id() is None
    assert cloud.validations == 1

    # The user logs in with another key: its lookup is not skipped.
    cloud.mode = "ok"
    save_credentials(Credentials("key-b"))
    out = run_python(TIMED_LOOKUP.format(offset=0.0, budget=60))
    assert out["principal"] == "prn_b"
    assert cloud.validations == 2


LOOKUP_THEN_MODULES = """\
{before}
principal = UsageIdentity(lookup_timeout=60).get_principal_id()  # modules, not the budget
import httpx
emit(
    principal=principal,
    cli_client="httpx._main" in sys.modules,
    rich="rich" in sys.modules,
    main=type(httpx.main).__name__,  # a click command, or the stub httpx falls back to
)
"""

CLI_CLIENT_LATER = """\
principal = UsageIdentity(lookup_timeout=60).get_principal_id()  # modules, not the budget
import httpx._main  # whoever wants httpx's command line still has it
emit(principal=principal, cli_client=httpx._main.__name__)
"""


def test_a_lookup_does_not_load_httpxs_command_line_client(
    cloud: FakeCloud, run_python: RunPython
) -> None:
    """`import httpx` loads its command-line client (rich, click and pygments when they
    are installed, as typer installs rich): 40% of its import, inside the lookup's 2 s
    budget. The lookup leaves it out, and httpx as it was in a process that had it."""
    cloud.add_account("key-a", "prn_a", "a@example.com")
    save_credentials(Credentials("key-a", "a@example.com"))

    out = run_python(LOOKUP_THEN_MODULES.format(before=""))
    assert out == {"principal": "prn_a", "cli_client": False, "rich": False, "main": "function"}

    out = run_python(LOOKUP_THEN_MODULES.format(before="import httpx"))
    assert out == {"principal": "prn_a", "cli_client": True, "rich": True, "main": "Command"}

    assert run_python(CLI_CLIENT_LATER) == {"principal": "prn_a", "cli_client": "httpx._main"}
    assert cloud.validations == 3


def test_an_httpx_that_cannot_do_without_its_command_line_client_still_loads(
    run_python: RunPython, tmp_path: Path
) -> None:
    """Should a release of httpx import `httpx._main` unguarded, the lookup loads it whole."""
    package = tmp_path / "httpx"
    package.mkdir()
    (package / "__init__.py").write_text("from ._main import main\nClient = object\n")
    (package / "_main.py").write_text("main = 'the command line'\n")

    script = (
        "from arcade_identity._lookup import _import_httpx\n"
        "http = _import_httpx()\n"
        "emit(origin=http.__file__, main=http.main, left=sys.modules['httpx._main'] is not None)\n"
    )
    out = run_python(script, env={"PYTHONPATH": str(tmp_path)})
    assert out == {"origin": str(package / "__init__.py"), "main": "the command line", "left": True}


@pytest.mark.parametrize("occupant", ["directory", "symlink", "fifo"])
def test_a_failure_is_remembered_when_something_else_sits_at_the_record(
    cloud: FakeCloud, work_dir: Path, tmp_path: Path, run_python: RunPython, occupant: str
) -> None:
    """In an outage every command would otherwise wait for Cloud again (up to 2 s each)."""
    cloud.add_account("key-a", "prn_a", "a@example.com")
    cloud.mode = "error"
    save_credentials(Credentials("key-a"))
    record = work_dir / "principal_lookup.json"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("the user's own file\n")
    if occupant == "directory":
        record.mkdir()
        (record / "kept.txt").write_text("kept\n")
    elif occupant == "symlink":
        record.symlink_to(elsewhere)
    else:
        os.mkfifo(record)

    assert UsageIdentity().get_principal_id() is None
    assert cloud.validations == 1
    # The next command, in a new process, does not ask again.
    assert run_python(TIMED_LOOKUP.format(offset=0.0, budget=60))["principal"] is None
    assert cloud.validations == 1
    assert json.loads(record.read_bytes())["failed_at"] > 0
    # What sat there is moved aside, never written through or deleted.
    assert elsewhere.read_text() == "the user's own file\n"
    if occupant == "directory":
        [moved] = work_dir.glob("principal_lookup.json.*")
        assert (moved / "kept.txt").read_text() == "kept\n"
