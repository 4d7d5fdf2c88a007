"""Test tiers and the offline guard.

* Default tier: CPU, offline, fast. ``slow`` (tiny end-to-end suites) also runs by default, as in CI; deselect
  with ``-m "not slow"``. ``gpu`` and ``network`` tests are skipped unless ``--run-gpu`` / ``--run-network``.
* Every test runs with sockets blocked and every cache (HF, torch hub, XDG, ASYRP_BENCH_HOME) pointed at a
  per-test temporary folder, so a hidden download fails loudly instead of reaching a hub.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE_DIR = Path(os.environ.get("ASYRP_BENCH_RELEASE_DIR", REPO_ROOT.parent / "shared" / "data" / "asyrp_release"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-gpu", action="store_true", help="run tests that need CUDA and real weights")
    parser.addoption("--run-network", action="store_true", help="run tests that may download")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "gpu" in item.keywords and not config.getoption("--run-gpu"):
            item.add_marker(pytest.mark.skip(reason="needs --run-gpu (CUDA and real weights)"))
        if "network" in item.keywords and not config.getoption("--run-network"):
            item.add_marker(pytest.mark.skip(reason="needs --run-network"))


class NetworkBlockedError(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def offline(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Block sockets (except AF_UNIX) and isolate every cache directory."""
    if "network" not in request.keywords:
        real_connect = socket.socket.connect

        def guarded_connect(self: socket.socket, address: object) -> None:
            if self.family == socket.AF_UNIX:
                return real_connect(self, address)
            # The browser test talks to its local chromedriver over loopback; nothing leaves the machine.
            loopback = isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1", "localhost")
            if "browser" in request.keywords and loopback:
                return real_connect(self, address)
            raise NetworkBlockedError(f"test tried to open a network connection to {address!r}")

        monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    cache = tmp_path_factory.mktemp("cache")
    for var, sub in (("HF_HOME", "hf"), ("TORCH_HOME", "torch"), ("XDG_CACHE_HOME", "xdg"),
                     ("ASYRP_BENCH_HOME", "asyrp_bench")):
        monkeypatch.setenv(var, str(cache / sub))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield


@pytest.fixture
def release_dir() -> Path:
    """The released Asyrp files (../shared/data/asyrp_release); skips when the folder is absent."""
    if not RELEASE_DIR.is_dir():
        pytest.skip(f"released Asyrp files not found at {RELEASE_DIR} (set ASYRP_BENCH_RELEASE_DIR)")
    return RELEASE_DIR


# Small convolutions are faster on one thread, and two threads per process on a busy 2-core machine are
# 10-50x slower than one (measured in benchmarks/bench_backends.py). Override with ASYRP_BENCH_TEST_THREADS.
torch.set_num_threads(int(os.environ.get("ASYRP_BENCH_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
