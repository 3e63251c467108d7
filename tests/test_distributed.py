"""Distributed recognition on Dask: a LocalCluster of worker processes, and a worker killed mid-batch."""

from __future__ import annotations

import os
import signal

import pytest
from sqlalchemy import func, select

from formstation.store import pages, scan_files
from ocr import persist
from ocr.ingest import ingest_paths

distributed = pytest.importorskip("distributed")


@pytest.fixture
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as c, Client(c) as client:
        yield c, client


def _count(store):
    with store.tx() as conn:
        return conn.execute(select(func.count()).select_from(pages)).scalar()


def test_pages_go_to_dask_workers(printed, cluster):
    store, layout, pdfs = printed
    c, client = cluster
    s = ingest_paths(store, layout, pdfs, read_fields=False, scheduler=c.scheduler_address)
    assert (s.pages, s.forms, s.quarantined) == (6, 6, 0)
    assert _count(store) == 6
    # the pages really ran on the workers: each worker built its engines once
    built = client.run(lambda: __import__("ocr.worker", fromlist=["_ENGINES"])._ENGINES is not None)
    assert any(built.values())


def test_worker_killed_mid_batch_loses_nothing(printed, cluster, monkeypatch):
    store, layout, pdfs = printed
    c, client = cluster
    real = persist.store_page
    killed = []

    def store_then_kill(conn, res):
        out = real(conn, res)
        if not killed:
            pids = client.run(os.getpid)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        return out

    monkeypatch.setattr(persist, "store_page", store_then_kill)
    s = ingest_paths(store, layout, pdfs, read_fields=False, scheduler=c.scheduler_address)
    assert killed and s.pages == 6 and _count(store) == 6
    with store.tx() as conn:
        assert {r.status for r in conn.execute(select(scan_files.c.status))} == {"done"}
