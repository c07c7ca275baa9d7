"""The browser login: a one-shot callback server on 127.0.0.1 that Arcade Cloud redirects to."""

from __future__ import annotations

import secrets
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import typer

LOGIN_PATH = "/api/v1/auth/cli_login"
CALLBACK_PATH = "/callback"

_DONE_PAGE = b"""<!doctype html><meta charset="utf-8"><title>Arcade</title>
<p>You are logged in to the Arcade CLI. You can close this tab.</p>"""


class LoginTimeoutError(TimeoutError):
    """No valid callback arrived in time."""


class _CallbackServer(HTTPServer):
    def __init__(self, state: str) -> None:
        super().__init__(("127.0.0.1", 0), _CallbackHandler)
        self.state = state
        self.result: tuple[str, str | None] | None = None
        self.done = threading.Event()


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != CALLBACK_PATH:
            self._reply(404, b"Not found")
        elif not secrets.compare_digest(query.get("state", ""), self.server.state):
            # Not the login we started (a forged or stale link): refuse and keep waiting.
            self._reply(400, b"Invalid login state")
        elif not query.get("api_key"):
            self._reply(400, b"Missing api_key")
        else:
            self.server.result = (query["api_key"], query.get("email") or None)
            self._reply(200, _DONE_PAGE, "text/html; charset=utf-8")
            self.server.done.set()

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the query holds the API key: never echo requests


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
        if not server.done.wait(timeout):
            raise LoginTimeoutError(
                f"no login arrived within {timeout:g} s. Run `arcade login` to try again."
            )
        assert server.result is not None
        return server.result
    finally:
        server.shutdown()
        server.server_close()
