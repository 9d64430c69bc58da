"""Mining: association measures, pair statistics, frequent itemsets, rules and bundles.

Everything here works in item indices (`InteractionData.items`); map ids at the edges.

    x = transactions(data)                       # baskets × items, 0/1
    pairs = pair_stats(x, min_count=2)           # every co-occurring pair, measures on demand
    top = top_k_per_item(pairs, 10, by="lift")
    sets = frequent_itemsets(x, 0.005, max_len=4)
    rules = association_rules(sets, min_confidence=0.3)
    bundles_for_item(sets, item_idx)             # "frequently bought together"
    complete_basket(rules, basket_item_idxs)     # "complete your basket"
"""

from itemaffinity.mining.bundles import Bundle, Suggestion, bundles_for_item, complete_basket, itemset_lift
from itemaffinity.mining.itemsets import Itemsets, frequent_itemsets, min_count_for
from itemaffinity.mining.measures import LOWER_IS_STRONGER, MEASURES, measure
from itemaffinity.mining.pairs import PairStats, pair_stats, top_k_per_item
from itemaffinity.mining.rules import RULE_MEASURES, Rules, association_rules
from itemaffinity.mining.transactions import TRANSACTION_UNITS, binarize, transactions

__all__ = [
    "Bundle", "Itemsets", "LOWER_IS_STRONGER", "MEASURES", "PairStats", "RULE_MEASURES", "Rules",
    "Suggestion", "TRANSACTION_UNITS", "association_rules", "binarize", "bundles_for_item",
    "complete_basket", "frequent_itemsets", "itemset_lift", "measure", "min_count_for", "pair_stats",
    "top_k_per_item", "transactions",
]
