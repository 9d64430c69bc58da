"""Sparse helpers shared by the neighbourhood models."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import scipy.sparse as sp


def row_blocks(indptr: np.ndarray, max_entries: int) -> Iterator[tuple[int, int]]:
    """(start, end) ranges of consecutive CSR rows holding at most `max_entries` stored entries
    together (a longer row is a block of its own): blockwise dense work with bounded memory."""
    n_rows = len(indptr) - 1
    start = 0
    while start < n_rows:
        end = max(start + 1, int(np.searchsorted(indptr, indptr[start] + max_entries, side="right")) - 1)
        end = min(end, n_rows)
        yield start, end
        start = end


def top_k_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row of a CSR matrix (ties broken by column index)."""
    m = m.tocsr()
    m.sort_indices()
    counts = np.diff(m.indptr)
    if k <= 0 or counts.max(initial=0) <= k:
        return m
    rows, cols, vals = [], [], []
    for r in np.flatnonzero(counts):
        s, e = m.indptr[r], m.indptr[r + 1]
        d = m.data[s:e]
        if e - s > k:
            keep = np.argpartition(-d, k - 1)[:k]
        else:
            keep = np.arange(e - s)
        rows.append(np.full(len(keep), r))
        cols.append(m.indices[s:e][keep])
        vals.append(d[keep])
    if not rows:
        return sp.csr_matrix(m.shape, dtype=m.dtype)
    out = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape)
    out.sort_indices()
    return out


def bm25_weight(x: sp.csr_matrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """BM25 weighting of a transactions × items matrix (rows are documents, as in implicit)."""
    x = sp.coo_matrix(x, dtype=np.float64)
    n = float(x.shape[0])
    idf = np.log(n) - np.log1p(np.bincount(x.col, minlength=x.shape[1]))
    row_sums = np.ravel(x.sum(axis=1))
    avg = row_sums.mean() if len(row_sums) else 1.0
    length_norm = (1.0 - b) + b * row_sums / max(avg, 1e-12)
    data = x.data * (k1 + 1.0) / (k1 * length_norm[x.row] + x.data) * idf[x.col]
    return sp.csr_matrix((data, (x.row, x.col)), shape=x.shape)


def tfidf_weight(x: sp.csr_matrix) -> sp.csr_matrix:
    """TF-IDF weighting of a transactions × items matrix."""
    x = sp.coo_matrix(x, dtype=np.float64)
    n = float(x.shape[0])
    idf = np.log(n) - np.log1p(np.bincount(x.col, minlength=x.shape[1]))
    return sp.csr_matrix((np.sqrt(x.data) * idf[x.col], (x.row, x.col)), shape=x.shape)
