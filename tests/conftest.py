"""Shared fixtures: profiles, the catalog and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from airig import profiles
from airig.planner import Catalog

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _isolated_profile_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the user's own profiles out of every test."""
    monkeypatch.setattr(profiles, "USER_DIR", tmp_path / "no-user-profiles")
    monkeypatch.delenv(profiles.ENV_PATH, raising=False)


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.default()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def profile(name: str) -> profiles.Profile:
    return profiles.load(name)
