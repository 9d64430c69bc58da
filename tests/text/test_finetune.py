"""Co-purchase pair mining and contrastive fine-tuning (tiny, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from itemaffinity.text.encoders import SentenceEncoder, load_sentence_model
from itemaffinity.text.finetune import FinetuneConfig, _batches, co_purchase_pairs, finetune_encoder


def _baskets(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    data = [(b, i) for b, items in enumerate(rows) for i in items]
    b, i = zip(*data)
    return sp.csr_matrix((np.ones(len(b), np.float32), (b, i)), shape=(len(rows), n_items))


def test_pairs_known_answer() -> None:
    # 0 and 1 always together, 3 and 4 twice; 2 is in every basket, so its pairs are chance (lift 1).
    rows = [[0, 1, 2]] * 4 + [[3, 4, 2]] * 2 + [[2, 5]] * 6 + [[2, 5, 6]]
    x = _baskets(rows, 7)
    pairs = co_purchase_pairs(x, min_count=2, score="lift", max_per_item=None)
    assert [tuple(p) for p in pairs] == [(3, 4), (0, 1)], "lift > 1 only: pairs with the hub 2 are chance"
    assert [tuple(p) for p in co_purchase_pairs(x, min_count=2, score="count", max_per_item=None)] == [(0, 1), (3, 4)]
    assert [tuple(p) for p in co_purchase_pairs(x, min_count=3, score="lift")] == [(0, 1)]
    usable = np.ones(7, dtype=bool)
    usable[4] = False
    assert [tuple(p) for p in co_purchase_pairs(x, min_count=2, usable=usable)] == [(0, 1)]
    assert co_purchase_pairs(x, min_count=99).shape == (0, 2)


def test_pairs_cap_per_item() -> None:
    rows = [[0, k] for k in range(1, 6) for _ in range(3)] + [[6]] * 50  # 0 pairs with each of 1..5
    x = _baskets(rows, 7)
    assert len(co_purchase_pairs(x, min_count=3, max_per_item=None)) == 5
    capped = co_purchase_pairs(x, min_count=3, max_per_item=2)
    assert len(capped) == 2 and all(0 in p for p in capped)


def test_batches_hold_no_duplicates() -> None:
    pairs = [("a", "b"), ("a", "c"), ("d", "e"), ("f", "b"), ("g", "h"), ("a", "h")]
    batches = _batches(pairs, 3, np.random.default_rng(0))
    for batch in batches:
        texts = [t for p in batch for t in pairs[p]]
        assert len(texts) == len(set(texts)) and 2 <= len(batch) <= 3
    used = sorted(p for b in batches for p in b)
    assert len(used) == len(set(used))


PAIRS = [("JUMBO BAG RED RETROSPOT", "LUNCH BAG RED RETROSPOT"),
         ("REGENCY CAKESTAND 3 TIER", "ROSES REGENCY TEACUP AND SAUCER"),
         ("PAPER CHAIN KIT 50'S CHRISTMAS", "60 CAKE CASES VINTAGE CHRISTMAS"),
         ("WHITE HANGING HEART T-LIGHT HOLDER", "HEART OF WICKER SMALL"),
         ("JAM MAKING SET PRINTED", "RECIPE BOX PANTRY YELLOW DESIGN"),
         ("ALARM CLOCK BAKELIKE RED", "ALARM CLOCK BAKELIKE GREEN"),
         ("PARTY BUNTING", "SPOTTY BUNTING"),
         ("SET OF 3 CAKE TINS PANTRY DESIGN", "PACK OF 72 RETROSPOT CAKE CASES"),
         ("LUNCH BAG SPACEBOY DESIGN", "LUNCH BAG CARS BLUE"),
         ("NATURAL SLATE HEART CHALKBOARD", "WOODEN PICTURE FRAME WHITE FINISH"),
         ("RABBIT NIGHT LIGHT", "POPCORN HOLDER"),
         ("ASSORTED COLOUR BIRD ORNAMENT", "VICTORIAN GLASS HANGING T-LIGHT")]
TINY = FinetuneConfig(train_batch_size=4, epochs=3, learning_rate=1e-4, warmup_ratio=0.0)


def _pair_cosines(model) -> np.ndarray:
    enc = SentenceEncoder(model)
    a, b = enc.encode([p[0] for p in PAIRS]), enc.encode([p[1] for p in PAIRS])
    return np.sum(a * b, axis=1)


def test_finetune_pulls_pairs_together_and_saves(sentence_model, tmp_path) -> None:
    before = _pair_cosines(sentence_model)
    tuned = finetune_encoder(sentence_model, PAIRS, TINY, output_dir=tmp_path / "ft")
    after = _pair_cosines(tuned)
    assert after.mean() > before.mean() + 0.02, (before.mean(), after.mean())
    assert np.array_equal(_pair_cosines(sentence_model), before), "the base model is not changed"
    embeddings = [m[0].auto_model.get_input_embeddings().weight for m in (tuned, sentence_model)]
    assert embeddings[0].equal(embeddings[1]), "freeze_embeddings keeps the token embeddings"
    assert SentenceEncoder(tuned).key != SentenceEncoder(sentence_model).key
    loaded = load_sentence_model(tmp_path / "ft", device="cpu")
    assert (tmp_path / "ft" / "model.safetensors").is_file()
    assert np.allclose(_pair_cosines(loaded), after, atol=1e-5)
    assert SentenceEncoder(loaded).key == SentenceEncoder(tuned).key, "saved and loaded: the same cache key"


def test_finetune_is_deterministic(sentence_model) -> None:
    first = SentenceEncoder(finetune_encoder(sentence_model, PAIRS, TINY.model_copy(update={"epochs": 1})))
    second = SentenceEncoder(finetune_encoder(sentence_model, PAIRS, TINY.model_copy(update={"epochs": 1})))
    assert first.key == second.key


def test_finetune_needs_pairs(sentence_model) -> None:
    with pytest.raises(ValueError):
        finetune_encoder(sentence_model, [], TINY)
