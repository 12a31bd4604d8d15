"""The Milvus backend's search consistency setting, on Milvus Lite (in-process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from indexer.settings import Settings
from indexer.vector_milvus import MilvusStore


def test_bounded_searches_find_what_strong_searches_find(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((200, 32)).astype(np.float32)
    strong = MilvusStore(str(tmp_path / "lite.db"), "v-test", "FLAT", shared=False)
    strong.add(np.arange(200), np.arange(200) // 20, vectors)
    bounded = MilvusStore(str(tmp_path / "lite.db"), "v-test", "FLAT", shared=False, consistency="Bounded")
    queries = vectors[:5] + 0.01 * rng.standard_normal((5, 32)).astype(np.float32)
    strong_sims, strong_ids = strong.search(queries, 3)
    _, bounded_ids = bounded.search(queries, 3)
    assert strong_ids[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert np.array_equal(strong_ids, bounded_ids)
    assert np.all(strong_sims[:, 0] > 0.99)


def test_an_unknown_consistency_level_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="consistency"):
        MilvusStore(str(tmp_path / "lite.db"), "v-test", "FLAT", shared=False, consistency="Weak")
    monkeypatch.setenv("SHEETID_MILVUS_CONSISTENCY", "Weak")
    with pytest.raises(ValidationError):
        Settings()
