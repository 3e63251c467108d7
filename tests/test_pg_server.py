"""scripts/pg_test_server.sh (issue 18.13): the tests' PostgreSQL server asks for a password, keeps
its socket out of /tmp, and stops when told to."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pg_test_server.sh"
pytestmark = pytest.mark.skipif(not glob.glob("/usr/lib/postgresql/*/bin/initdb"), reason="PostgreSQL not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_test_server_needs_a_password_and_stops():
    import psycopg

    port, data = _free_port(), f"/tmp/fs-pgtest-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "FORMSTATION_PG_PORT": str(port), "FORMSTATION_PG_DATA": data}

    def script(cmd):
        return subprocess.run(["bash", str(SCRIPT), cmd], env=env, check=True, capture_output=True, text=True).stdout

    try:
        url = script("start").strip()
        user, _, rest = url.split("://", 1)[1].partition("@")
        assert ":" in user and len(user.split(":", 1)[1]) >= 16  # postgres:<generated password>
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=formstation_test connect_timeout=5")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"host=127.0.0.1 port={port} user=postgres password=wrong dbname=formstation_test")
        hba = [line.split() for line in Path(data, "pg_hba.conf").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
        assert hba and all(row[-1] in ("peer", "scram-sha-256") for row in hba)
        assert not Path(f"/tmp/.s.PGSQL.{port}").exists()  # the socket is inside the data folder
        assert script("start").strip() == url  # started again: the same server, the same password
        Path(f"{data}.password").unlink()  # as a data folder an earlier (trust) version made
        again = script("start").strip()
        assert again != url and ":" in again.split("://", 1)[1].partition("@")[0]
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=formstation_test connect_timeout=5")
        script("stop")
        assert not _open(port)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
        for f in (f"{data}.password", f"{data}.pgpass"):
            Path(f).unlink(missing_ok=True)


def test_the_test_run_stops_its_server():
    text = (SCRIPT.parent / "test.sh").read_text()
    start = text.index("pg_test_server.sh start")
    assert "trap 'bash scripts/pg_test_server.sh stop' EXIT" in text[start:text.index("-m pytest", start)]
