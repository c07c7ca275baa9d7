"""The browser login: a callback server on 127.0.0.1 that Arcade Cloud redirects to.

Anything on the machine can connect to that port, so the server expects the
worst: each connection is served on its own thread with a deadline, so an idle,
slow or vanishing client never holds up the real callback; a request whose
`state` is not exactly ours (missing, repeated, not ASCII, too long, wrong) is
refused with 400 and changes nothing; and nothing a client does prints a
traceback.
"""

from __future__ import annotations

import secrets
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import typer

LOGIN_PATH = "/api/v1/auth/cli_login"
CALLBACK_PATH = "/callback"
CONNECTION_TIMEOUT = 10.0
"""Seconds a client has to send its request (and read the answer) before it is dropped."""
MAX_FIELD = 4096
"""Characters allowed in one query value: a key or an email is far shorter."""

_DONE_PAGE = b"""<!doctype html><meta charset="utf-8"><title>Arcade</title>
<p>You are logged in to the Arcade CLI. You can close this tab.</p>"""


class LoginTimeoutError(TimeoutError):
    """No valid callback arrived in time."""


class _CallbackServer(ThreadingHTTPServer):
    daemon_threads = True  # a client still connected when the login ends does not keep us
    block_on_close = False

    def __init__(self, state: str) -> None:
        super().__init__(("127.0.0.1", 0), _CallbackHandler)
        self.state = state
        self.result: tuple[str, str | None] | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()

    def accept(self, api_key: str, email: str | None) -> bool:
        """Keep the first valid callback's credentials; False for any later one (a replay)."""
        with self._lock:
            if self.result is not None:
                return False
            self.result = (api_key, email)
        self.done.set()
        return True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up or misbehaved: nothing the user needs to see."""


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer
    timeout = CONNECTION_TIMEOUT

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != CALLBACK_PATH:
            self._reply(404, b"Not found")
            return
        query = _parse_query(url.query)
        if query is None or not _is_ours(query.get("state"), self.server.state):
            # Not the login we started (forged, stale or garbled): refuse and keep waiting.
            self._reply(400, b"Invalid login state")
            return
        api_key = query.get("api_key")
        if not api_key:
            self._reply(400, b"Missing api_key")
            return
        if not self.server.accept(api_key, query.get("email") or None):
            self._reply(400, b"This login is already complete")
            return
        self._reply(200, _DONE_PAGE, "text/html; charset=utf-8")

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the query holds the API key, and stderr is the user's."""


def _parse_query(query: str) -> dict[str, str] | None:
    """The query's fields, each given at most once and at most MAX_FIELD long; else None."""
    try:
        fields = parse_qs(query, keep_blank_values=True, errors="strict", max_num_fields=20)
    except ValueError:  # undecodable bytes, too many fields
        return None
    if any(len(values) != 1 or len(values[0]) > MAX_FIELD for values in fields.values()):
        return None
    return {name: values[0] for name, values in fields.items()}


def _is_ours(state: str | None, expected: str) -> bool:
    if state is None or not state.isascii():
        return False
    return secrets.compare_digest(state, expected)


def wait_for_login(base_url: str, *, open_browser: bool, timeout: float) -> tuple[str, str | None]:
    """Print (and open) the login URL, then wait for Arcade Cloud's callback.

    Returns the API key and email it carried. Raises LoginTimeoutError when no
    callback with our `state` arrives within `timeout` seconds.
    """
    server = _CallbackServer(secrets.token_urlsafe(32))
    port = server.server_address[1]
    callback_uri = f"http://127.0.0.1:{port}{CALLBACK_PATH}"
    query = urlencode({"callback_uri": callback_uri, "state": server.state})
    url = f"{base_url}{LOGIN_PATH}?{query}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    try:
        typer.echo("Open this URL in your browser to log in:")
        typer.echo(url)
        if open_browser:
            webbrowser.open(url)
        typer.echo("Waiting for the login to finish in the browser (Ctrl-C to cancel)...")
        if not server.done.wait(timeout):
            raise LoginTimeoutError(
                f"no login arrived within {timeout:g} s. Run `arcade login` to try again."
            )
        assert server.result is not None
        return server.result
    finally:
        server.shutdown()
        server.server_close()
