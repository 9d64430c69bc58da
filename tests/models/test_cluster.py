"""Product groups on the real Online Retail store."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.cluster import item_embeddings, product_groups


def test_product_groups_do_not_depend_on_the_number_of_threads(or_store) -> None:
    """analyze and the service's rebuild run with different thread pools; the same data must give the same groups
    (a last-bit difference in the SVD used to send K-Means to other groups, with other names)."""
    data = InteractionData.from_store(str(or_store[0]))
    runs = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            runs.append((item_embeddings(data)[0], product_groups(data)))
    (emb_1, groups_1), (emb_2, groups_2) = runs
    assert np.array_equal(emb_1, emb_2)
    assert np.array_equal(groups_1.item_cluster, groups_2.item_cluster) and groups_1.labels == groups_2.labels
    assert len(set(groups_1.labels)) > 1 and (groups_1.item_cluster >= 0).sum() > 0.5 * data.n_items
