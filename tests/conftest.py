"""Shared fixtures: real datasets when the data root exists, skips with a clear reason otherwise."""

from __future__ import annotations

import os
import socket

import pytest

from medsecure_transforms.data import find_data_root

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def data_root():
    """The resolved data root; skips the test when ../shared/data (or $MEDSECURE_DATA_ROOT) is absent."""
    root = find_data_root()
    if root is None:
        pytest.skip("real datasets not found: set MEDSECURE_DATA_ROOT or place ../shared/data beside the repo")
    return root


@pytest.fixture
def unused_tcp_port() -> int:
    """A loopback TCP port that was free a moment ago (for a process group rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
