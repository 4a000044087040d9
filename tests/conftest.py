"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_exports() -> Path:
    """The folder of real sample exports (``../shared/fixtures/real-exports``; ``TWIN_FIXTURES`` overrides)."""
    default = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real-exports"
    root = Path(os.environ.get("TWIN_FIXTURES") or default)
    if not root.is_dir():
        pytest.skip(f"real export fixtures not found at {root}: they live beside the repo in ../shared (see README)")
    return root
