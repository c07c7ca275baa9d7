"""Real HTTP servers on 127.0.0.1 that speak PostHog's capture API and Arcade Cloud's auth API.

Both run in a thread of the test process, record what they receive, and can be
switched to misbehave (hang, fail, refuse, rate-limit) so tests see what a user
would on a bad day. `closed_port()` gives a loopback URL where nothing listens:
PostHog down.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
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
        # Mode "held": a request waits (`holding` set) until `go_on`, then is answered.
        self.holding, self.go_on = threading.Event(), threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        # A request acts out the mode in force when it was counted, so a test that has
        # seen it counted may switch the mode without changing what that request gets.
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
        self.answered(status, headers or {})
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def answered(self, status: int, headers: dict[str, str]) -> None:
        """Called with every answer before it is sent (a hook for the servers that log them)."""

    def misbehave(self, mode: str) -> bool:
        """Act out `mode` (the server's, read as the request was counted); True when the
        request has been answered already."""
        if mode == "hang":
            self.server.release.wait(HANG_SECONDS)
            self.close_connection = True
            return True
        if mode == "error":
            self.reply(503, {"detail": "unavailable"})
            return True
        if mode == "held":
            self.server.holding.set()
            self.server.go_on.wait(HANG_SECONDS)
        return False


@dataclass(frozen=True)
class Exchange:
    """One request to FakePostHog: the answer it got and the messages it carried.

    `status` is 0 for a request that got no answer (mode "hang"). `uuids` are the
    messages of a batch that could be decoded, in order, whatever the answer.
    """

    status: int
    uuids: tuple[str, ...]
    retry_after: str | None = None

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


class FakePostHog(_Server):
    """PostHog's `/batch/` (gzip or not), with a small person model and PostHog's refusals.

    Persons: every distinct id starts as its own person. A `$create_alias`
    (distinct_id D, properties.alias A) merges A's person into D's, unless A's
    person is already identified, in which case PostHog refuses silently. A person
    becomes identified by a merge or by an event that processes a person profile.

    Refusals, as the real capture endpoint answers them, always for a whole request
    (nothing of a refused batch is recorded):

    - a body that is not strict UTF-8 JSON: 400. Python's `json.loads` takes an
      escaped lone surrogate (`"\\udc80"`); PostHog's parser does not, and neither
      does this one;
    - a project key not in `api_keys` (when that is set): 401;
    - a batch with a message `refuse_message` named (by uuid, or by a property value): the
      status given for it (400, 413...);
    - a message larger than `max_message_bytes` (when set): 413;
    - mode "refuse": every request, with `refuse_status`;
    - `rate_limit(k, retry_after, status)`: the next k requests get 429 (or `status`) with
      that `Retry-After`.

    `exchanges` logs every request: its answer and the uuids it carried.
    """

    def __init__(self) -> None:
        super().__init__(_PostHogHandler)
        self.messages: list[dict[str, Any]] = []
        self.requests = 0
        self.gzipped_requests = 0
        self.exchanges: list[Exchange] = []
        self.api_keys: set[str] | None = None
        self.max_message_bytes: int | None = None
        self.refuse_status = 400
        self._poison: dict[str, int] = {}
        self._rate_limited = 0
        self._retry_after: str | None = None
        self._rate_limit_status = 429
        self._person: dict[str, int] = {}
        self._identified: set[int] = set()
        self.refused_aliases: list[tuple[str, str]] = []

    # -- how it misbehaves -------------------------------------------------------------

    def refuse_message(self, marker: str, status: int = 400) -> None:
        """Answer `status` to any batch holding a message with uuid `marker`, or a property
        whose value is `marker`."""
        with self.lock:
            self._poison[marker] = status

    def rate_limit(self, requests: int, retry_after: str | None, status: int = 429) -> None:
        """Answer the next `requests` requests with `status` (429, or 503 for an outage) and
        `Retry-After: retry_after`."""
        with self.lock:
            self._rate_limited = requests
            self._retry_after = retry_after
            self._rate_limit_status = status

    # -- what tests read ---------------------------------------------------------------

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if name is None or m["event"] == name]

    def command_events(self) -> list[dict[str, Any]]:
        return [m for m in self.events() if m["event"].startswith("CLI execution")]

    def aliases(self) -> list[tuple[str, str]]:
        """(distinct_id, alias) of each alias PostHog keeps: one per uuid, as it keeps one
        event per uuid. An alias whose request timed out after PostHog had it is queued,
        and its copy sent again is the same alias (`times_carried` counts the copies);
        two aliases of one pair are two uuids."""
        seen: set[str] = set()
        pairs = []
        for message in self.events("$create_alias"):
            if message["uuid"] not in seen:
                seen.add(message["uuid"])
                pairs.append((message["distinct_id"], message["properties"]["alias"]))
        return pairs

    def person_of(self, distinct_id: str) -> int:
        with self.lock:
            return self._person_locked(distinct_id)

    def same_person(self, a: str, b: str) -> bool:
        return self.person_of(a) == self.person_of(b)

    def log(self) -> list[Exchange]:
        """Every request answered (or hung) so far, in the order they came."""
        with self.lock:
            return list(self.exchanges)

    def statuses(self) -> list[int]:
        return [exchange.status for exchange in self.log()]

    def times_carried(self, uuid: str) -> int:
        """How many requests carried message `uuid`, whatever they were answered."""
        return sum(uuid in exchange.uuids for exchange in self.log())

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

    def take_rate_limit(self) -> tuple[int | None, str | None]:
        """The status of this request if it is one of the rate-limited ones, and its
        `Retry-After`."""
        with self.lock:
            if self._rate_limited <= 0:
                return None, None
            self._rate_limited -= 1
            return self._rate_limit_status, self._retry_after

    def refusal(self, batch: list[dict[str, Any]]) -> int | None:
        """The status a batch of well-formed JSON is refused with, or None if it is taken."""
        with self.lock:
            poison = dict(self._poison)
        for message in batch:
            markers = {message.get("uuid")}
            properties = message.get("properties")
            if isinstance(properties, dict):
                markers.update(v for v in properties.values() if isinstance(v, str))
            for marker in markers:
                if isinstance(marker, str) and marker in poison:
                    return poison[marker]
            if self.max_message_bytes is not None:
                size = len(json.dumps(message, ensure_ascii=False).encode())
                if size > self.max_message_bytes:
                    return 413
        return None


class _PostHogHandler(_Handler):
    server: FakePostHog
    _uuids: tuple[str, ...] = ()
    _answered = False

    def answered(self, status: int, headers: dict[str, str]) -> None:
        self._answered = True
        exchange = Exchange(status, self._uuids, headers.get("Retry-After"))
        with self.server.lock:
            self.server.exchanges.append(exchange)

    def do_POST(self) -> None:
        # One handler serves every request of a kept-alive connection.
        self._uuids, self._answered = (), False
        with self.server.lock:
            self.server.requests += 1
            mode = self.server.mode
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        try:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                with contextlib.suppress(OSError, EOFError):
                    body = gzip.decompress(body)
                    with self.server.lock:
                        self.server.gzipped_requests += 1
            payload = _strict_json(body)
            batch = payload.get("batch") if isinstance(payload, dict) else None
            if isinstance(batch, list):
                self._uuids = tuple(str(m.get("uuid")) for m in batch if isinstance(m, dict))
            self._answer(payload, batch, mode)
        finally:
            if not self._answered:
                self.answered(0, {})
            with self.server.lock:
                self.server.in_flight -= 1

    def _answer(self, payload: Any, batch: Any, mode: str) -> None:
        if self.misbehave(mode):
            return
        server = self.server
        limited, retry_after = server.take_rate_limit()
        if limited is not None:
            headers = {} if retry_after is None else {"Retry-After": retry_after}
            self.reply(limited, {"detail": "rate limited"}, headers)
            return
        if mode == "refuse":
            self.reply(server.refuse_status, {"detail": "refused"})
            return
        path = urlparse(self.path).path
        if payload is None:
            self.reply(400, {"detail": "the body is not valid UTF-8 JSON"})
            return
        if path not in ("/batch", "/batch/") or not isinstance(batch, list):
            self.reply(400, {"detail": "unexpected request"})
            return
        api_key = payload.get("api_key")
        if not api_key:
            self.reply(401, {"detail": "missing api_key"})
            return
        if server.api_keys is not None and api_key not in server.api_keys:
            self.reply(401, {"detail": "invalid project api key"})
            return
        if not all(isinstance(m, dict) for m in batch):
            self.reply(400, {"detail": "malformed batch"})
            return
        status = server.refusal(batch)
        if status is not None:
            self.reply(status, {"detail": "message refused"})
            return
        server.record(batch)
        self.reply(200, {"status": 1})


def _strict_json(body: bytes) -> Any:
    """`body` decoded as a strict parser would (None if it refuses it).

    Strict means valid UTF-8, and no lone surrogate written as an escape: Python's
    `json` decodes `"\\udc80"` into a string that cannot be encoded, where
    PostHog's parser refuses the request.
    """
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return payload if _valid_unicode(payload) else None


def _valid_unicode(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_valid_unicode(k) and _valid_unicode(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_valid_unicode(v) for v in value)
    return True


@contextlib.contextmanager
def closed_port() -> Iterator[str]:
    """A loopback URL where nothing listens: connections are refused, as when PostHog is down.

    The port stays bound (not listening) for the block, so no other test can take it.
    """
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


class FakeCloud(_Server):
    """Arcade Cloud's `/api/v1/auth/validate` and `/whoami`, and the browser page that starts
    a CLI login.

    `accounts` maps API keys to (principal_id, email), `tokens` OAuth access tokens to
    (account_id, email). `GET /api/v1/auth/cli_login`
    redirects, as the real page does once the user has signed in, to the CLI's
    callback with `browser_key`'s credentials. arcade-core's token refresh finds its
    endpoint at `GET /api/v1/auth/cli_config`; `POST /oauth/token` answers a refresh
    with `next_token` (counted in `refreshes`).
    """

    def __init__(self) -> None:
        super().__init__(_CloudHandler)
        self.accounts: dict[str, tuple[str, str]] = {}
        self.tokens: dict[str, tuple[str, str]] = {}
        self.validations = 0
        self.whoamis = 0
        self.refreshes = 0
        self.next_token: str | None = None
        self.browser_key: str | None = None

    def add_account(self, api_key: str, principal_id: str, email: str) -> None:
        self.accounts[api_key] = (principal_id, email)

    def add_token(self, access_token: str, account_id: str, email: str) -> None:
        self.tokens[access_token] = (account_id, email)


class _CloudHandler(_Handler):
    server: FakeCloud

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/api/v1/auth/validate":
            with self.server.lock:
                self.server.validations += 1
                mode = self.server.mode
            if self.misbehave(mode):
                return
            auth = self.headers.get("Authorization", "")
            account = self.server.accounts.get(auth.removeprefix("Bearer "))
            if account is None:
                self.reply(401, {"detail": "invalid api key"})
            else:
                self.reply(200, {"data": {"principal_id": account[0], "email": account[1]}})
        elif url.path == "/api/v1/auth/whoami":
            with self.server.lock:
                self.server.whoamis += 1
                mode = self.server.mode
            if self.misbehave(mode):
                return
            auth = self.headers.get("Authorization", "")
            account = self.server.tokens.get(auth.removeprefix("Bearer "))
            if account is None:
                self.reply(401, {"detail": "invalid token"})
            else:
                self.reply(200, {"data": {"account_id": account[0], "email": account[1]}})
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
        elif url.path == "/api/v1/auth/cli_config":
            self.reply(
                200,
                {
                    "client_id": "arcade-cli",
                    "authorization_endpoint": f"{self.server.url}/oauth/authorize",
                    "token_endpoint": f"{self.server.url}/oauth/token",
                },
            )
        else:
            self.reply(404, {"detail": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        with self.server.lock:
            token = self.server.next_token
            refresh = urlparse(self.path).path == "/oauth/token" and token is not None
            refresh = refresh and form.get("grant_type") == "refresh_token"
            self.server.refreshes += refresh
        if not refresh:
            self.reply(404, {"detail": "not found"})
            return
        body = {"access_token": token, "refresh_token": "refresh-2", "expires_in": 3600}
        self.reply(200, {**body, "token_type": "Bearer"})
