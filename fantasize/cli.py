"""Command-line interface: `flask seed` (the demo shop), `flask create-admin`, `flask cache warm|clear` and
`flask announce`."""

from __future__ import annotations

from collections.abc import Callable

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from marshmallow import ValidationError
from redis.exceptions import RedisError

from fantasize import seed as demo
from fantasize.errors import Conflict
from fantasize.platform import cache as page_cache
from fantasize.platform import redis_clients
from fantasize.realtime import outbox, realtime_of
from fantasize.schemas.realtime import ANNOUNCEMENT_TYPES, AnnouncementInSchema


@click.command("seed")
@click.option("--seed", "rng_seed", default=demo.DEFAULT_SEED, show_default=True, type=int,
              help="Random seed: the same seed builds the same shop.")
@with_appcontext
def seed_command(rng_seed: int) -> None:
    """Build the demo shop. Safe to run again: only what is missing is added."""
    with click.progressbar(length=demo.seed_units(), label="Seeding the demo shop") as bar:
        report = demo.seed_demo_shop(rng_seed, progress=bar.update)
    click.echo(f"Demo shop ready (seed {rng_seed}):")
    for kind, total in report.totals.items():
        click.echo(f"  {kind:<15}{total:>4}  ({report.created[kind]} new)")
    click.echo(f"Demo customers: {', '.join(demo.DEMO_CUSTOMERS)}, password {demo.DEMO_CUSTOMER_PASSWORD}")


def _checked(check: Callable[[str], None], param: str) -> Callable[[str], str]:
    """A click value processor from a check that raises ValidationError (click shows it and asks again)."""

    def process(value: str) -> str:
        try:
            check(value)
        except ValidationError as exc:
            raise click.BadParameter(" ".join(exc.messages), param_hint=param) from exc
        return value

    return process


@click.command("create-admin")
@click.option("--email", required=True, help="The administrator's email (stored lower-cased).")
@click.option("--password", help="8 to 128 characters; asked for, with confirmation, when left out.")
@click.option("--if-missing", is_flag=True, help="Do nothing, successfully, when the email already has an account.")
@with_appcontext
def create_admin_command(email: str, password: str | None, if_missing: bool) -> None:
    """Create an administrator account."""
    email = _checked(demo.check_email, "--email")(email.strip().lower())
    existing = demo.find_user(email)
    if existing is not None:
        if if_missing:
            click.echo(f"{existing.email} already has an account (role {existing.role}); nothing to do.")
            return
        raise click.ClickException(f"An account with the email {existing.email} already exists.")
    check_password = _checked(demo.check_password, "--password")
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, value_proc=check_password)
    else:
        check_password(password)
    try:
        user = demo.create_admin(email, password)
    except Conflict as exc:  # created by someone else since the check above
        raise click.ClickException(exc.message) from exc
    click.echo(f"Created administrator {user.email} (id {user.id}).")


@click.group("cache")
def cache_group() -> None:
    """The page cache of the public catalogue."""


def _only_this_process() -> None:
    if not page_cache.is_shared(current_app):
        click.echo("Note: without REDIS_URL the cache lives in each server process's memory; this command only "
                   "reached its own process's cache (restart the server to empty its cache).")


@cache_group.command("warm")
@with_appcontext
def cache_warm_command() -> None:
    """Fill the cache with the main catalogue pages of every API version."""
    for path, status, state in page_cache.warm(current_app):
        click.echo(f"  {status} {state or '-':<4} {path}")
    _only_this_process()


@cache_group.command("clear")
@with_appcontext
def cache_clear_command() -> None:
    """Invalidate every cached page and delete the stored ones (this app's keys only)."""
    try:
        deleted = page_cache.clear(current_app)
    except RuntimeError as exc:
        raise click.ClickException(f"Could not clear the cache: {exc}") from exc
    click.echo("Cache cleared" + (f": {deleted} stored pages deleted." if deleted is not None else "."))
    _only_this_process()


# How long `flask announce` waits for Redis to answer a PING before giving up (connect, then reply).
QUEUE_PING_SECONDS = 1.0
NO_QUEUE = ("No message queue: a separate process can only reach the clients of running servers through Redis. "
            "Set SOCKETIO_MESSAGE_QUEUE (or REDIS_URL) as the servers have it, or use "
            "POST /api/v1/admin/announcements instead.")
ANNOUNCE_ARGUMENTS = {"title": "TITLE", "message": "MESSAGE", "type": "--type"}


def _check_queue(url: str) -> None:
    """PING the message queue with a short timeout: an emit to a dead Redis is only logged, never raised."""
    try:
        client = redis_clients.client(url, socket_connect_timeout=QUEUE_PING_SECONDS,
                                      socket_timeout=QUEUE_PING_SECONDS)
    except ValueError as exc:
        raise click.ClickException(f"The message queue URL is not a Redis URL: {exc}") from exc
    try:
        client.ping()
    except RedisError as exc:
        reason = str(exc).rstrip(".")
        raise click.ClickException(
            f"The message queue ({redis_clients.address(url)}) is unreachable: {reason}. Nothing was sent; once Redis "
            "answers, run this again, or use POST /api/v1/admin/announcements.") from exc
    finally:
        client.close()


@click.command("announce")
@click.argument("title")
@click.argument("message")
@click.option("--type", "kind", type=click.Choice(ANNOUNCEMENT_TYPES), default="info", show_default=True,
              help="What the announcement is about.")
@with_appcontext
def announce_command(title: str, message: str, kind: str) -> None:
    """Send system_announcement (TITLE, MESSAGE) to every Socket.IO client of every running server.

    It travels through the Redis message queue (SOCKETIO_MESSAGE_QUEUE, else REDIS_URL); without one, use
    POST /api/v1/admin/announcements. HTML is removed from the texts, as the HTTP route does.
    """
    try:
        announcement = AnnouncementInSchema().load({"title": title, "message": message, "type": kind})
    except ValidationError as exc:
        problems = "; ".join(f"{ANNOUNCE_ARGUMENTS.get(name, name)}: {' '.join(map(str, messages))}"
                             for name, messages in exc.normalized_messages().items())
        raise click.UsageError(f"Invalid announcement: {problems}") from exc
    realtime = realtime_of(current_app)
    if not realtime.queue_url:
        raise click.ClickException(NO_QUEUE)
    _check_queue(realtime.queue_url)
    payload = outbox.announce(realtime, announcement["title"], announcement["message"], announcement["type"],
                              wait=True)
    realtime.outbox.flush()
    click.echo(f"Sent system_announcement ({payload['type']}) at {payload['timestamp']}: {payload['title']}")


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_command)
    app.cli.add_command(create_admin_command)
    app.cli.add_command(cache_group)
    app.cli.add_command(announce_command)
