"""A benchmark's own PostgreSQL database: dropped and created again, empty, before each run."""

from __future__ import annotations

import psycopg2
from sqlalchemy.engine import make_url


def connect(url: str, database: str | None = None):
    """A psycopg2 connection to `url`'s server (to its database, or to `database`), autocommitting."""
    target = make_url(url)
    conn = psycopg2.connect(host=target.host, port=target.port or 5432, user=target.username,
                            password=target.password, dbname=database or target.database)
    conn.autocommit = True
    return conn


def fresh_database(url: str) -> None:
    """Drop the database `url` names (closing its sessions) and create it again, empty."""
    name = make_url(url).database
    conn = connect(url, "postgres")
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
