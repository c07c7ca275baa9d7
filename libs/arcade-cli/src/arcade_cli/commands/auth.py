"""`arcade login`, `arcade logout`, `arcade whoami`."""

from __future__ import annotations

from typing import Annotated

import typer

from arcade_cli.exceptions import ArcadeCliError, describe_os_error
from arcade_identity import (
    DEFAULT_CLOUD_URL,
    Credentials,
    CredentialsError,
    CredentialsUnreadableError,
    InvalidApiKeyError,
    Principal,
    PrincipalLookupError,
    cloud_base_url,
    credentials_path,
    lookup_principal,
    read_credentials,
    remove_credentials,
    save_credentials,
    shown_url,
)

LOGIN_TIMEOUT = 300.0
VALIDATE_TIMEOUT = 5.0
"""Seconds `login` waits for Arcade Cloud: the user is waiting for this answer, unlike
the 2 s a tracked command grants a background lookup."""


STRAY_WORDS = {"allow_extra_args": True}
"""Context settings of a command that takes no argument: words given all the same are
kept (`ctx.args`) for `refuse_stray` instead of click's error, which would print them."""


def refuse_stray(ctx: typer.Context) -> None:
    """Words where the command takes none, most likely a key pasted without `--api-key`:
    refused without being printed."""
    if ctx.args:
        raise ArcadeCliError(
            f"{len(ctx.args)} unexpected argument(s), not shown. To log in with a key:"
            " arcade login --api-key KEY (or --api-key - to read it from stdin)."
        )


def login(
    ctx: typer.Context,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            metavar="KEY",
            help="Log in with this API key instead of the browser; `-` reads it from stdin.",
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", metavar="URL", help="Arcade Cloud URL (default: Arcade's)."),
    ] = None,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Print the login URL without opening it.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", metavar="SECONDS", help="Seconds to wait for the browser.", hidden=True
        ),
    ] = LOGIN_TIMEOUT,
) -> None:
    """Log in to Arcade Cloud, with the browser or an API key."""
    refuse_stray(ctx)
    # A damaged credentials file is what a new login replaces, not a reason to refuse.
    current = _current_credentials(replacing=True)
    if current is not None and current.self_hosted:
        # Replacing it would lose that engine's key; logging out first would too.
        raise ArcadeCliError(
            f"the context in force ({current.context or 'the saved one'}) is a self-hosted "
            "engine's. Log in to Arcade Cloud in another: ARCADE_CONTEXT=<name> arcade login"
        )
    if host is not None:
        _check_url(host)
    base_url = (host or cloud_base_url(current)).rstrip("/")
    email_hint = None
    if api_key == "-":
        api_key = _key_from_stdin()
    elif api_key is not None:
        api_key = _pasted_key(api_key, "--api-key")
    if api_key is None:
        if current is not None:
            typer.echo(
                f"Already logged in as {current.email or 'an Arcade user'}. "
                "Run `arcade logout` first to switch accounts."
            )
            return
        api_key, email_hint = _browser_login(base_url, open_browser=not no_browser, timeout=timeout)
    principal = _validate(api_key, base_url)
    email = principal.email or email_hint
    if host:
        coordinator_url = base_url if base_url != DEFAULT_CLOUD_URL else None
    else:  # keep the Cloud an earlier `login --host` chose
        coordinator_url = current.coordinator_url if current is not None else None
    try:
        save_credentials(Credentials(api_key, email, coordinator_url))
    except OSError as exc:
        # Named as the user knows it, not as the temp file the failed rename held.
        raise ArcadeCliError(
            f"cannot save credentials to {credentials_path()}: {exc.strerror or exc}"
        ) from exc
    who = email or "your Arcade account"
    if current is not None and current.email and current.email != email:
        typer.echo(f"Logged in as {who} (replacing {current.email}).")
    else:
        typer.echo(f"Logged in as {who}.")


def logout(ctx: typer.Context) -> None:
    """Log out: remove the credentials of the context in force."""
    refuse_stray(ctx)
    try:
        removed = remove_credentials()
    except CredentialsUnreadableError as exc:
        raise ArcadeCliError(f"cannot remove credentials: {exc}") from exc
    except CredentialsError as exc:  # its contexts cannot be told apart: all are kept
        raise ArcadeCliError(
            f"cannot remove credentials: {_naming_the_file(exc)}. "
            "Fix the file, or delete it to log out of every context."
        ) from exc
    except OSError as exc:
        raise ArcadeCliError(f"cannot remove credentials: {describe_os_error(exc)}") from exc
    typer.echo("Logged out." if removed else "Not logged in.")


def whoami(ctx: typer.Context) -> None:
    """Show the account you are logged in as."""
    refuse_stray(ctx)
    credentials = _current_credentials()
    if credentials is None:
        raise ArcadeCliError("not logged in. Run `arcade login`.")
    if credentials.self_hosted:
        _show_self_hosted(credentials)
        return
    import time

    base_url = cloud_base_url(credentials)
    secret = credentials.secret
    assert secret is not None  # read_credentials returns None for a context without one
    what = "access token" if credentials.access_token else "API key"
    if credentials.expired(time.time()):
        # Refreshing a token belongs to the CLI that wrote it; we never write its file.
        principal_id = credentials.account_id or "unknown (the saved access token has expired)"
    else:
        try:
            kind = "access_token" if credentials.access_token else "api_key"
            principal_id = lookup_principal(
                secret, base_url, kind=kind, timeout=VALIDATE_TIMEOUT
            ).principal_id
        except InvalidApiKeyError as exc:
            raise ArcadeCliError(
                f"Arcade Cloud at {shown_url(base_url)} rejected the saved {what}."
                " Run `arcade login` again."
            ) from exc
        except PrincipalLookupError as exc:
            principal_id = f"unknown ({exc})"
    typer.echo(f"Email:     {credentials.email or 'unknown'}")
    typer.echo(f"Principal: {principal_id}")
    typer.echo(f"Cloud:     {shown_url(base_url)}")
    _show_context(credentials)


def _show_self_hosted(credentials: Credentials) -> None:
    """A self-hosted context: its key is its engine's, never shown to Arcade Cloud."""
    typer.echo(f"Email:     {credentials.email or 'unknown'}")
    typer.echo("Principal: none (a self-hosted context; usage events stay anonymous)")
    typer.echo(f"Engine:    {shown_url(credentials.engine_url or 'unknown')}")
    _show_context(credentials)


def _show_context(credentials: Credentials) -> None:
    """The context's name, org and project, those the credentials have."""
    if credentials.context:
        typer.echo(f"Context:   {credentials.context}")
    if credentials.org_id:
        typer.echo(f"Org:       {_named(credentials.org_name, credentials.org_id)}")
    if credentials.project_id:
        typer.echo(f"Project:   {_named(credentials.project_name, credentials.project_id)}")


def _named(name: str | None, ident: str) -> str:
    return f"{name} ({ident})" if name else ident


def _current_credentials(*, replacing: bool = False) -> Credentials | None:
    """The saved credentials; a file that cannot be used is an error unless `replacing` it."""
    try:
        return read_credentials()
    except CredentialsUnreadableError as exc:
        if replacing:
            return None
        raise ArcadeCliError(str(exc)) from exc  # logging in again would not help
    except CredentialsError as exc:
        if replacing:
            return None
        raise ArcadeCliError(f"{_naming_the_file(exc)}. Run `arcade login` to replace it.") from exc


def _naming_the_file(exc: CredentialsError) -> str:
    """The error, with the credentials file's path once (some messages hold it already)."""
    message, path = str(exc), str(credentials_path())
    return message if path in message else f"{message} ({path})"


MAX_KEY_BYTES = 4096


def _key_from_stdin() -> str:
    """The key piped in (`arcade login --api-key - < key.txt`): out of shell history and `ps`.

    At a terminal it is asked for without echo, as a password is: typed keys would
    otherwise stay on the screen (and in the terminal's scrollback). Spaces and line
    breaks around it, as `echo`, a text editor or a paste leave them, are not part of it.
    """
    import sys

    if sys.stdin is None:
        raise ArcadeCliError("--api-key -: standard input is closed.")
    if sys.stdin.isatty():
        import getpass

        try:
            key = getpass.getpass("Arcade API key (not shown): ").strip()
        except KeyboardInterrupt:
            typer.echo(err=True)  # Ctrl-C is not echoed either: end the prompt's line
            raise
        if not key:
            raise ArcadeCliError("--api-key -: no API key was typed.")
        return _pasted_key(key, "--api-key -")
    raw = sys.stdin.buffer.read(MAX_KEY_BYTES + 1)
    if len(raw) > MAX_KEY_BYTES:
        raise ArcadeCliError(f"--api-key -: more than {MAX_KEY_BYTES} bytes on standard input.")
    try:
        key = raw.decode()
    except UnicodeDecodeError as exc:
        raise ArcadeCliError("--api-key -: standard input is not UTF-8 text.") from exc
    if not key.strip():
        raise ArcadeCliError("--api-key -: no API key on standard input.")
    return _pasted_key(key, "--api-key -")


def _pasted_key(key: str, option: str) -> str:
    """`key` without the spaces and line breaks a paste leaves around it; an error,
    never showing it, when what remains cannot be an API key (or an HTTP header)."""
    key = key.strip()
    if not key:
        raise ArcadeCliError(f"{option}: the API key is empty.")
    if not all("!" <= char <= "~" for char in key):
        raise ArcadeCliError(
            f"{option}: the API key holds a space, a line break, or a control or "
            "non-ASCII character, which no API key has. Check what was pasted."
        )
    return key


def _check_url(url: str) -> None:
    """`--host` must be an http:// or https:// URL with a host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        ok = False
    if not ok or any(char.isspace() for char in url):
        # Not echoed: a URL may carry a user name and password.
        raise ArcadeCliError(
            "--host: not an http:// or https:// URL (such as https://cloud.arcade.dev)."
        )


def _validate(api_key: str, base_url: str) -> Principal:
    try:
        return lookup_principal(api_key, base_url, timeout=VALIDATE_TIMEOUT)
    except InvalidApiKeyError as exc:
        raise ArcadeCliError(
            f"Arcade Cloud at {shown_url(base_url)} rejected the API key."
        ) from exc
    except PrincipalLookupError as exc:
        message, shown = str(exc), shown_url(base_url)
        if shown not in message:
            message = f"{message} ({shown})"
        raise ArcadeCliError(message) from exc


def _browser_login(base_url: str, *, open_browser: bool, timeout: float) -> tuple[str, str | None]:
    from arcade_cli._login_server import LoginTimeoutError, wait_for_login

    try:
        return wait_for_login(base_url, open_browser=open_browser, timeout=timeout)
    except LoginTimeoutError as exc:
        raise ArcadeCliError(str(exc)) from exc
    except OSError as exc:
        raise ArcadeCliError(f"cannot start the login callback server: {exc}") from exc
