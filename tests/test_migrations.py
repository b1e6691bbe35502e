"""The Alembic chain builds the whole model on an empty database of either backend, and tears it down."""

from __future__ import annotations

import psycopg2
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from config import TestingConfig
from fantasize import create_app
from fantasize.extensions import db
from tests.conftest import _postgres_url, _recreate_postgres_database
from tests.support import skip_or_fail


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    url = make_url(_postgres_url())
    url = url.set(database=f"{url.database}_migrations").render_as_string(hide_password=False)
    try:
        _recreate_postgres_database(url)
    except psycopg2.OperationalError as exc:  # only a server that does not answer; any other error is a failure
        skip_or_fail(f"PostgreSQL is not reachable: {exc}")
    return url


def test_upgrade_matches_the_models_and_downgrade_leaves_nothing(empty_database_url):
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": empty_database_url})
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert differences == []
        assert {"users", "products", "orders", "order_lines"} <= set(inspect(db.engine).get_table_names())

        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()


def test_every_foreign_key_is_the_leading_column_of_an_index(empty_database_url):
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": empty_database_url})
    with app.app_context():
        upgrade()
        inspector = inspect(db.engine)
        unindexed = []
        for table in inspector.get_table_names():
            leading = {tuple(ix["column_names"][:1]) for ix in inspector.get_indexes(table)}
            leading |= {tuple(uq["column_names"][:1]) for uq in inspector.get_unique_constraints(table)}
            leading.add(tuple(inspector.get_pk_constraint(table)["constrained_columns"][:1]))
            for fk in inspector.get_foreign_keys(table):
                if tuple(fk["constrained_columns"][:1]) not in leading:
                    unindexed.append(f"{table}.{fk['constrained_columns'][0]}")
        downgrade(revision="base")
        db.engine.dispose()
    assert unindexed == []
