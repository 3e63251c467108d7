"""Start the review app as a local server process (used by `formstation review`, tests and the bench)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

APP = Path(__file__).resolve().parent / "server_app.py"  # app.py behind a gate on /media/


def streamlit_command(workspace: Path, port: int, address: str = "127.0.0.1",
                      lease_minutes: float = 15.0) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", address, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.maxUploadSize", "2000",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal",
            "--", "--workspace", str(workspace), "--lease-minutes", str(lease_minutes)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(workspace: Path, port: int | None = None, log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start the server; returns (process, base url) once it answers its health check."""
    port = port or free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it open)
    proc = subprocess.Popen(streamlit_command(workspace, port), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the review app exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the review app did not start within 30 s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
