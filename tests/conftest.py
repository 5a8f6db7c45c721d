"""Shared test fixtures: the real data beside the checkout (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
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
