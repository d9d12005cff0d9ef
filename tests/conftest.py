"""Fixtures: every test of what touches storage runs against a real SQLite file and the real
local PostgreSQL; a test of a rule that never depends on storage (validation, derived states,
a measure's definition) is marked `backends("sqlite")` and runs on SQLite alone.

PostgreSQL: one fresh database per test run, one fresh schema per test. In CI (CI=true) a
missing server fails the run; elsewhere those tests skip with a visible reason.
"""

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from service.ledger import LandLedger

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
_schemas = itertools.count(1)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"landledger_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
            # A test database need not wait for each commit to reach the disk: what a commit
            # makes visible, and when, is the same; only a crash of the server could lose it.
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    except psycopg.OperationalError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL 不可用（CI 中必须运行 PostgreSQL 测试）：{error}")
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432, its tests are skipped: {error}")
    yield name
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each store test once per backend: both, unless its closest `backends` mark says."""
    if "new_store" in metafunc.fixturenames:
        mark = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("new_store", mark.args if mark else BACKENDS, indirect=True)


@pytest.fixture
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes fresh, empty stores on one backend: SQLite files, or new schemas in the test
    database (several a test, for property tests that need one per example)."""
    database = request.getfixturevalue("pg_database") if request.param == "postgres" else ""
    files = itertools.count(1)

    def make() -> str:
        if not database:
            return str(tmp_path / f"ledger{next(files)}.db")
        schema = f"t{next(_schemas)}"
        url = f"postgresql://postgres@127.0.0.1:5432/{database}"
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f'CREATE SCHEMA "{schema}"')
        return f"{url}?schema={schema}"

    return make


@pytest.fixture
def db_url(new_store: Callable[[], str]) -> str:
    """A fresh, empty store: a SQLite file, or a new schema in the test database."""
    return new_store()


@pytest.fixture
def app(db_url: str) -> Iterator[LandLedger]:
    ledger = LandLedger(db_url)
    yield ledger
    ledger.close()
