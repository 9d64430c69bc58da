"""Transactions: the binary transactions × items matrix every miner reads.

A transaction is a basket (the default: items bought together) or a user (every item the user
touched, from the weighted user × item matrix). Items stay in the `InteractionData.items`
index space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from itemaffinity.data.interactions import InteractionData

TRANSACTION_UNITS: dict[str, Callable[[InteractionData], sp.spmatrix]] = {
    "baskets": lambda data: data.basket_items,
    "users": lambda data: data.user_items,
}


def binarize(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """A canonical CSR copy of `matrix` with int32 ones where it holds a positive value.

    Args:
        matrix: (n_transactions, n_items) sparse matrix of counts or weights.

    Returns:
        (n_transactions, n_items) CSR, int32 0/1, sorted indices, no duplicates or zeros.
    """
    m = sp.csr_matrix(matrix, copy=True)
    m.sum_duplicates()  # also sorts the indices
    m.data = (m.data > 0).astype(np.int32)
    m.eliminate_zeros()
    return m


def transaction_unit(data: InteractionData) -> str:
    """What one default transaction of `data` is, in the words of reasons and pages: "basket", or "customer" in data
    without orders (reviews, ratings, views), whose transactions are its users."""
    return "basket" if data.n_baskets else "customer"


def transactions(data: InteractionData, unit: str | None = None) -> sp.csr_matrix:
    """The binary transactions × items matrix of `data`.

    Args:
        data: the shared interaction data.
        unit: "baskets" (rows are purchase baskets) or "users" (rows are users, an item is in
            the transaction when the user's weight for it is positive); None: baskets when the data has
            orders, else users (what goes together is what is bought together, and without orders, what the
            same user touched).

    Returns:
        (n_transactions, n_items) int32 0/1 CSR, items indexed like `data.items`.
    """
    try:
        matrix = TRANSACTION_UNITS[unit or ("baskets" if transaction_unit(data) == "basket" else "users")](data)
    except KeyError:
        raise KeyError(f"unknown transaction unit {unit!r}; known: {', '.join(TRANSACTION_UNITS)}") from None
    return binarize(matrix)


def transaction_counts(data: InteractionData) -> np.ndarray:
    """(n_items,) transactions holding each item: baskets, or in a log without orders (reviews, ratings, views)
    customers, as the analysis mines them (`transactions`)."""
    return np.bincount(transactions(data).indices, minlength=data.n_items)
