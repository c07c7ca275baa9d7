"""Real HTTP servers on 127.0.0.1 that speak PostHog's capture API and Arcade Cloud's auth API.

Both run in a thread of the test process, record what they receive, and can be
switched to misbehave (hang, fail) so tests see what a user would on a bad day.
"""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

HANG_SECONDS = 30.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.lock = threading.Lock()
        self.release = threading.Event()  # set to end every hanging request
        self.in_flight = 0
        self.max_in_flight = 0
        self.mode = "ok"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def misbehave(self) -> bool:
        """Act out the server's mode; True when the request has been answered already."""
        mode = self.server.mode
        if mode == "hang":
            self.server.release.wait(HANG_SECONDS)
            self.close_connection = True
            return True
        if mode == "error":
            self.reply(503, {"detail": "unavailable"})
            return True
        return False


class FakePostHog(_Server):
    """PostHog's `/batch/` (gzip or not), with a small person model.

    Persons: every distinct id starts as its own person. A `$create_alias`
    (distinct_id D, properties.alias A) merges A's person into D's, unless A's
    person is already identified, in which case PostHog refuses silently. A person
    becomes identified by a merge or by an event that processes a person profile.
    """

    def __init__(self) -> None:
        super().__init__(_PostHogHandler)
        self.messages: list[dict[str, Any]] = []
        self.requests = 0
        self.gzipped_requests = 0
        self._person: dict[str, int] = {}
        self._identified: set[int] = set()
        self.refused_aliases: list[tuple[str, str]] = []

    # -- what tests read ---------------------------------------------------------------

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if name is None or m["event"] == name]

    def command_events(self) -> list[dict[str, Any]]:
        return [m for m in self.events() if m["event"].startswith("CLI execution")]

    def aliases(self) -> list[tuple[str, str]]:
        return [(m["distinct_id"], m["properties"]["alias"]) for m in self.events("$create_alias")]

    def person_of(self, distinct_id: str) -> int:
        with self.lock:
            return self._person_locked(distinct_id)

    def same_person(self, a: str, b: str) -> bool:
        return self.person_of(a) == self.person_of(b)

    # -- the model ---------------------------------------------------------------------

    def _person_locked(self, distinct_id: str) -> int:
        return self._person.setdefault(distinct_id, len(self._person) + 1_000_000)

    def record(self, batch: list[dict[str, Any]]) -> None:
        with self.lock:
            for message in batch:
                self.messages.append(message)
                distinct_id = message["distinct_id"]
                if message["event"] == "$create_alias":
                    self._alias_locked(distinct_id, message["properties"]["alias"])
                elif message.get("properties", {}).get("$process_person_profile") is not False:
                    self._identified.add(self._person_locked(distinct_id))

    def _alias_locked(self, distinct_id: str, alias: str) -> None:
        target = self._person_locked(distinct_id)
        merged = self._person_locked(alias)
        if merged == target:
            return
        if merged in self._identified:
            self.refused_aliases.append((distinct_id, alias))
            return
        for key, person in self._person.items():
            if person == merged:
                self._person[key] = target
        self._identified.add(target)


class _PostHogHandler(_Handler):
    server: FakePostHog

    def do_POST(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        try:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.misbehave():
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
                with self.server.lock:
                    self.server.gzipped_requests += 1
            path = urlparse(self.path).path
            payload = json.loads(body)
            if path not in ("/batch", "/batch/") or not isinstance(payload.get("batch"), list):
                self.reply(400, {"detail": "unexpected request"})
                return
            if not payload.get("api_key"):
                self.reply(401, {"detail": "missing api_key"})
                return
            self.server.record(payload["batch"])
            self.reply(200, {"status": 1})
        finally:
            with self.server.lock:
                self.server.in_flight -= 1


class FakeCloud(_Server):
    """Arcade Cloud's `/api/v1/auth/validate`, and the browser page that starts a CLI login.

    `accounts` maps API keys to (principal_id, email). `GET /api/v1/auth/cli_login`
    redirects, as the real page does once the user has signed in, to the CLI's
    callback with `browser_key`'s credentials.
    """

    def __init__(self) -> None:
        super().__init__(_CloudHandler)
        self.accounts: dict[str, tuple[str, str]] = {}
        self.validations = 0
        self.browser_key: str | None = None

    def add_account(self, api_key: str, principal_id: str, email: str) -> None:
        self.accounts[api_key] = (principal_id, email)


class _CloudHandler(_Handler):
    server: FakeCloud

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/api/v1/auth/validate":
            with self.server.lock:
                self.server.validations += 1
            if self.misbehave():
                return
            auth = self.headers.get("Authorization", "")
            account = self.server.accounts.get(auth.removeprefix("Bearer "))
            if account is None:
                self.reply(401, {"detail": "invalid api key"})
            else:
                self.reply(200, {"data": {"principal_id": account[0], "email": account[1]}})
        elif url.path == "/api/v1/auth/cli_login":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            key = self.server.browser_key or ""
            email = self.server.accounts.get(key, ("", ""))[1]
            target = (
                query["callback_uri"]
                + "?"
                + urlencode({"state": query["state"], "api_key": key, "email": email})
            )
            self.reply(302, b"", {"Location": target})
        else:
            self.reply(404, {"detail": "not found"})
