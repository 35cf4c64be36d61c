"""Command line: the `papo` command (`papo run`, `papo notify`, `papo migrate`, `papo vacuum`).

`papo notify` is also `flask --app app notify`, for scripts and cron jobs.
"""
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any, NoReturn

import click
from flask.cli import ScriptInfo, with_appcontext

from .errors import ChatError
from .extension import papo
from .service import LEVELS

DEFAULT_URL = "http://127.0.0.1:5000"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _create_app():
    from . import create_app

    return create_app()


@click.group()
@click.pass_context
def main(context: click.Context) -> None:
    """Run and manage a Papo server; settings come from the environment (docs/operations.md)."""
    context.obj = ScriptInfo(create_app=_create_app, set_debug_flag=False)


@main.command("run")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--port", default=5000, type=int, show_default=True, help="The port to bind.")
def run(host: str, port: int) -> NoReturn:
    """Run the production server in ASYNC_MODE, exactly as `python app.py` does."""
    # ASYNC_MODE's monkey-patching must come before anything imports socket or threading, and this
    # process has imported both already: the server starts in a fresh interpreter.
    script = os.path.join(ROOT, "app.py")
    os.execv(sys.executable, [sys.executable, script, "--host", host, "--port", str(port)])


@main.command("migrate")
def migrate() -> None:
    """Bring the database at DATABASE_URL to the newest schema revision (Alembic upgrade)."""
    from .config import SettingError, load
    from .store import Store

    try:
        settings = load(os.path.join(ROOT, "instance"))
        store = Store(settings.DATABASE_URL)  # refuses a database it cannot serve (an in-memory one)
    except SettingError as error:
        raise click.ClickException(str(error)) from None
    try:
        store.migrate()
    except SettingError as error:  # the database cannot be reached or opened
        raise click.ClickException(str(error)) from None
    finally:
        store.close()
    click.echo("the database schema is up to date")


@main.command("vacuum")
def vacuum() -> None:
    """Rewrite the SQLite file at DATABASE_URL compactly, with Papo's page size; stop its server first."""
    from .config import SettingError, load
    from .store import Store, describe
    from .store.engine import SQLITE_PAGE_SIZE

    try:
        settings = load(os.path.join(ROOT, "instance"))
        store = Store(settings.DATABASE_URL)
    except SettingError as error:
        raise click.ClickException(str(error)) from None
    try:
        size, page_size, after = store.vacuum(
            lambda: click.echo(f"rewriting {describe(store.url)}: about as long as copying the file takes"))
    except SettingError as error:  # a server serves the file, or the database is not SQLite
        raise click.ClickException(str(error)) from None
    finally:
        store.close()
    click.echo(f"{size:,} bytes in pages of {page_size:,} -> {after:,} bytes in pages of {SQLITE_PAGE_SIZE:,}")


@click.command("notify")
@click.option("--room", help="Notify the members of this room.")
@click.option("--user", help="Notify every connection of this user; kept until read.")
@click.option("--everyone", is_flag=True, help="Notify every connection.")
@click.option("--title", required=True, help="The headline, 1 to 200 characters.")
@click.option("--body", default="", help="The text under it.")
@click.option("--level", type=click.Choice(LEVELS), default="info", show_default=True)
@click.option("--url", envvar="PAPO_URL", default=DEFAULT_URL, show_default=True,
              help="The running server: POST /api/notify with the NOTIFY_TOKEN setting. Env: PAPO_URL.")
@click.option("--direct", is_flag=True,
              help="Deliver from this process instead of through --url: a user's notification is stored; "
                   "live connections are reached only through REDIS_URL's message queue.")
@with_appcontext
def notify(room: str | None, user: str | None, everyone: bool, title: str, body: str, level: str, url: str,
           direct: bool) -> None:
    """Send a notification to a room's members, to one user, or to everyone."""
    if [bool(room), bool(user), everyone].count(True) != 1:
        raise click.UsageError("say who: exactly one of --room, --user or --everyone")
    payload: dict[str, str] = {"title": title, "body": body, "level": level}
    if room:
        payload["room"] = room
    if user:
        payload["user"] = user
    answer = _in_process(payload) if direct else post_notification(url, papo().settings.NOTIFY_TOKEN, payload)
    click.echo(f"notification {answer['id']} sent to {answer['recipients']} recipient(s)")


def post_notification(url: str, token: str, payload: dict[str, str]) -> dict[str, Any]:
    """POST /api/notify on a running server; return its answer, or raise a ClickException with its error."""
    if not token:
        raise click.ClickException("NOTIFY_TOKEN is not set; the server refuses notifications without it")
    request = urllib.request.Request(
        url.rstrip("/") + "/api/notify", data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as refusal:
        try:
            error = json.load(refusal)["error"]
            reason = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            reason = f"HTTP {refusal.code}"
        raise click.ClickException(f"the server refused: {reason}") from None
    except (urllib.error.URLError, OSError) as failure:
        cause = failure.reason if isinstance(failure, urllib.error.URLError) else failure
        raise click.ClickException(f"cannot reach {url} ({cause}); is the server running? "
                                   "(--direct delivers without it)") from None


def _in_process(payload: dict[str, str]) -> dict[str, Any]:
    if not papo().settings.REDIS_URL and "user" not in payload:
        click.echo("warning: no REDIS_URL, so only this process's connections (none) receive it", err=True)
    try:
        note, recipients = papo().service.notify(payload["title"], payload["body"], payload["level"],
                                                 payload.get("room"), payload.get("user"))
    except ChatError as error:
        raise click.ClickException(f"{error.code}: {error.message}") from None
    return {"id": note["id"], "recipients": recipients}


main.add_command(notify)
