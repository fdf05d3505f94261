"""Fixtures shared by the storage tests: a fresh LMDB environment per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from raftkv.storage.env import MiB, open_env
from raftkv.storage.mvcc import MvccStore
from tests.storage.helpers import Driver


@pytest.fixture
def env_path(tmp_path: Path) -> Path:
    return tmp_path / "env"


@pytest.fixture
def env(env_path: Path) -> Iterator[lmdb.Environment]:
    e = open_env(env_path, map_size=256 * MiB)
    yield e
    e.close()


@pytest.fixture
def store(env: lmdb.Environment) -> MvccStore:
    return MvccStore(env, quota_bytes=64 * MiB)


@pytest.fixture
def drv(store: MvccStore) -> Driver:
    return Driver(store)
