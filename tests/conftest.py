"""Shared test fixtures: paths to the repository and to the MIG-Bench parity data it carries (tests/fixtures)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: Public MIG-Bench files, two models' published result files and two real photos (see its README.md).
PARITY = FIXTURES / "mig-bench"


@pytest.fixture
def parity_dir() -> Path:
    return PARITY


def run_mirg(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `mirg` command in a fresh process and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mirg", *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout
    )


@pytest.fixture
def mirg():
    return run_mirg


@pytest.fixture
def loopback():
    """Start real HTTP servers on 127.0.0.1 for a test: ``loopback(handler_class, on_close=None)`` returns the base URL
    of an OpenAI-compatible API (``http://127.0.0.1:PORT/v1``); every server is closed after the test, ``on_close``
    called first (to release a handler that holds requests)."""
    servers = []

    def start(handler, on_close=None) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, on_close))
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server, on_close in servers:
        if on_close is not None:
            on_close()
        server.shutdown()
        server.server_close()
