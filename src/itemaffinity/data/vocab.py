"""Vocabulary: external ids ↔ contiguous indices (STYLE 1: ids at the edges, indices inside)."""

from __future__ import annotations

from typing import Iterable

import numpy as np


class Vocabulary:
    """An immutable, sorted set of external string ids with their indices.

    Args:
        ids: the external ids; duplicates are removed and the rest sorted, so the same set
            always gets the same indices.
    """

    __slots__ = ("_ids", "_index")

    def __init__(self, ids: Iterable[str], *, presorted: bool = False) -> None:
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=object)
        if not presorted:
            arr = np.array(sorted(set(arr.tolist())), dtype=object)
        arr.flags.writeable = False
        self._ids = arr
        self._index = {v: i for i, v in enumerate(arr.tolist())}

    @property
    def ids(self) -> np.ndarray:
        """External ids in index order (read-only object array)."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def index(self, item_id: str) -> int:
        """Index of one id, −1 when unknown."""
        return self._index.get(item_id, -1)

    def indices(self, ids: Iterable[str]) -> np.ndarray:
        """Indices of many ids (int64), −1 for unknown ones."""
        get = self._index.get
        return np.fromiter((get(i, -1) for i in ids), dtype=np.int64)

    def id(self, idx: int) -> str:
        return self._ids[idx]

    def ids_of(self, idx: np.ndarray) -> list[str]:
        return self._ids[np.asarray(idx, dtype=np.int64)].tolist()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and np.array_equal(self._ids, other._ids)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} ids)"
