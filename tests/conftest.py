"""Shared fixtures: a workspace with a demo roster imported and printed, made by the project's tools."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_THREAD_LIMIT", "1")


# The store runs on SQLite always, and on a real PostgreSQL server when the test command started one
# (scripts/test.sh sets FORMSTATION_TEST_PG_URL; scripts/pg_test_server.sh starts it on 127.0.0.1).
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("FORMSTATION_TEST_PG_URL") else [])


def _reset_pg(url: str) -> None:
    from sqlalchemy import create_engine

    from formstation.store import md

    engine = create_engine(url)
    md.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def workspace(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "ws"
    monkeypatch.setenv("FORMSTATION_WORKSPACE", str(ws))
    if request.param == "postgresql":
        url = os.environ["FORMSTATION_TEST_PG_URL"]
        _reset_pg(url)
        monkeypatch.setenv("DATABASE_URL", url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    return ws


@pytest.fixture
def printed(workspace: Path, tmp_path: Path):
    """A store with a 2-class demo roster imported and printed; returns (store, layout, pdf paths)."""
    from forms.layout import load_layout
    from formstation import demo
    from formstation.printjob import print_forms
    from formstation.roster import import_roster
    from formstation.store import Store

    store = Store.open(workspace)
    roster = demo.write_roster(tmp_path / "roster.csv", seed=3, per_class=3, classes=demo.DEMO_CLASSES[1:3])
    import_roster(store, roster)
    layout = load_layout()
    files = print_forms(store, layout, tmp_path / "print")
    return store, layout, [f.path for f in files]
