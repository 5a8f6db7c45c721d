"""Shared test fixtures: the real data beside the checkout (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ../shared beside the checkout; CDBENCH_SHARED points elsewhere (the GPU machine gets a carried copy)
SHARED = Path(os.environ.get("CDBENCH_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
SHARED_DATA = SHARED / "data"
SHARED_FIXTURES = SHARED / "fixtures"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real reference data not available: {path} is absent (it sits beside the checkout in CI)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real SPCD / M-SPCD annotations, 17 real photos, Sharma 2005 data."""
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """``../shared/fixtures``: model fixtures made with the original reference implementations."""
    return _need(SHARED_FIXTURES)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one intra-op thread is faster than several fighting over shared cores.
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_mspcd_with_train(tmp_path_factory) -> Path:
    """A synthetic M-SPCD dataset folder with a train split (scores + descriptions), built by cdbench."""
    from cdbench.builders import build_mspcd
    from cdbench.data.synthetic import make_synthetic_mspcd, make_synthetic_spcd

    root = tmp_path_factory.mktemp("synthetic-mspcd")
    make_synthetic_spcd(root / "spcd", n_scenes=3, size=32)
    make_synthetic_mspcd(root / "ann", root / "spcd", with_train=True)
    return build_mspcd(root / "spcd", root / "ann", root / "ds", progress=False)
