"""Co-purchase pair mining and contrastive fine-tuning (tiny, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from itemaffinity.text import finetune
from itemaffinity.text.encoders import SentenceEncoder, load_sentence_model
from itemaffinity.text.finetune import (FinetuneConfig, _batches, _loss, _masked_mnrl, co_purchase_pairs,
                                        co_purchase_text_pairs, finetune_encoder, interpolate_weights,
                                        new_item_cooccurrence, related_texts)


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
    per_item = co_purchase_pairs(x, min_count=3, max_per_item=np.array([4, 1, 1, 0, 1, 1, 1]))  # item 3: none
    assert len(per_item) == 4 and not any(3 in p for p in per_item)


def test_new_item_pairs() -> None:
    # Items 0 and 1 are old stock (day 0). Item 2 is new on day 100 and bought with 0 for its first
    # days, with 1 only later; item 3 is new on day 100 too, bought with 2 (not on sale before it).
    rows = [[0, 1]] * 3 + [[0, 2, 3]] * 2 + [[1, 2]] * 3 + [[1]] * 10  # (the last baskets keep lift > 1)
    days = [0, 0, 0, 100, 101, 200, 201, 202] + [0] * 10
    ts = np.datetime64("2011-01-01T00:00:00") + np.array(days) * np.timedelta64(86400, "s")
    x = _baskets(rows, 4)
    co = new_item_cooccurrence(x, ts, new_days=30, warmup_days=60).toarray()
    assert co[0, 2] == 2 and co[0, 3] == 2, "old item 0 with each new item in its first 30 days"
    assert co[1, 2] == 0, "1 was bought with 2 only after 2's first 30 days"
    assert co[2, 3] == 0 and co[3, 2] == 0, "neither was on sale before the other"
    assert co[:, :2].sum() == 0, "items of the first days are old stock, not new"
    texts = ["A", "B", "C", "D"]
    cfg = FinetuneConfig(pair_source="new", min_count=2, max_per_item=None)
    assert sorted(co_purchase_text_pairs(x, texts, cfg, basket_ts=ts)) == [("A", "C"), ("A", "D")]
    both = co_purchase_text_pairs(x, texts, cfg.model_copy(update={"pair_source": "both"}), basket_ts=ts)
    assert sorted(both[:2]) == [("A", "C"), ("A", "D")] and len(both) == len(set(both)), "new-item pairs first"
    with pytest.raises(ValueError):
        co_purchase_text_pairs(x, texts, cfg)


def test_pair_window_and_direction() -> None:
    # 0 first sold on day 0, 1 on day 10, 2 on day 100; (0, 1) bought together early, (1, 2) late.
    rows = [[0]] + [[1]] + [[0, 1]] * 3 + [[1, 2]] * 3 + [[3]] * 10  # (the last baskets keep lift > 1)
    days = [0, 10, 11, 12, 13, 100, 101, 102] + [100] * 10
    ts = np.datetime64("2011-01-01T00:00:00") + np.array(days) * np.timedelta64(86400, "s")
    x = _baskets(rows, 4)
    texts = ["A", "B", "C", "D"]
    cfg = FinetuneConfig(min_count=3, max_per_item=None)
    assert sorted(co_purchase_text_pairs(x, texts, cfg)) == [("A", "B"), ("B", "C")]
    recent = cfg.model_copy(update={"pair_days": 30.0})
    assert co_purchase_text_pairs(x, texts, recent, basket_ts=ts) == [("B", "C")], "only the last 30 days' baskets"
    older = cfg.model_copy(update={"direction": "older_to_newer"})
    assert sorted(co_purchase_text_pairs(x, texts, older, basket_ts=ts)) == [("A", "B"), ("B", "C")]
    newer = cfg.model_copy(update={"direction": "newer_to_older"})
    assert sorted(co_purchase_text_pairs(x, texts, newer, basket_ts=ts)) == [("B", "A"), ("C", "B")]
    both = cfg.model_copy(update={"pair_days": 30.0, "direction": "newer_to_older"})
    assert co_purchase_text_pairs(x, texts, both, basket_ts=ts) == [("C", "B")], "first sale is over all baskets"
    with pytest.raises(ValueError):
        co_purchase_text_pairs(x, texts, older)


def test_pair_lines_keeps_pairs_on_neighbouring_lines() -> None:
    # Three orders list items 0, 1, 2, 3 in that order; item 4 pads the data so that the pairs' lift is > 1.
    rows = [[0, 1, 2, 3]] * 3 + [[4]] * 10
    lines = _baskets(rows, 5)
    lines.data = np.array([1, 2, 3, 4] * 3 + [1] * 10, np.float32)  # line positions, as basket_lines holds
    texts = ["A", "B", "C", "D", "E"]
    cfg = FinetuneConfig(min_count=3, max_per_item=None)
    assert len(co_purchase_text_pairs(lines, texts, cfg)) == 6, "anywhere in the order: every pair"
    near = cfg.model_copy(update={"pair_lines": 1})
    assert sorted(co_purchase_text_pairs(lines, texts, near)) == [("A", "B"), ("B", "C"), ("C", "D")]
    two = cfg.model_copy(update={"pair_lines": 2})
    assert len(co_purchase_text_pairs(lines, texts, two)) == 5, "all but (A, D), three lines apart"
    with pytest.raises(ValueError, match="line positions"):
        co_purchase_text_pairs(_baskets(rows, 5), texts, near)


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


def test_interpolated_weights_lie_between(sentence_model) -> None:
    tuned = finetune_encoder(sentence_model, PAIRS, TINY.model_copy(update={"epochs": 1}))
    half = interpolate_weights(sentence_model, tuned, 0.5)
    top = len(finetune._transformer_layers(sentence_model)) - 1  # the layer train_layers=1 trains
    name, p0 = next((n, p) for n, p in sentence_model.named_parameters() if f"encoder.layer.{top}." in n)
    p1, ph = dict(tuned.named_parameters())[name], dict(half.named_parameters())[name]
    assert not p1.equal(p0)
    assert np.allclose(ph.detach().numpy(), (0.5 * (p0 + p1)).detach().numpy(), atol=1e-6)
    direct = finetune_encoder(sentence_model, PAIRS, TINY.model_copy(update={"epochs": 1, "interpolate": 0.5}))
    assert np.allclose(_pair_cosines(direct), _pair_cosines(half), atol=1e-5), "the interpolate setting"


def test_train_layers_keeps_lower_layers(sentence_model) -> None:
    tuned = finetune_encoder(sentence_model, PAIRS, TINY.model_copy(update={"epochs": 1, "train_layers": 1}))
    before, after = dict(sentence_model.named_parameters()), dict(tuned.named_parameters())
    layers = [n for n in before if ".encoder.layer." in n]
    top = len(finetune._transformer_layers(sentence_model)) - 1
    for name in layers:
        changed = not after[name].equal(before[name])
        assert changed == (f".encoder.layer.{top}." in name), name
    assert _pair_cosines(tuned).mean() > _pair_cosines(sentence_model).mean()


def test_gist_loss_trains(sentence_model) -> None:
    before = _pair_cosines(sentence_model)
    after = _pair_cosines(finetune_encoder(sentence_model, PAIRS, TINY.model_copy(update={"loss": "gist"})))
    assert after.mean() > before.mean() + 0.02, (before.mean(), after.mean())


def test_hard_negatives(sentence_model) -> None:
    texts = [a for a, _ in PAIRS] + [b for _, b in PAIRS]
    n = len(PAIRS)
    x = _baskets([[k, k + n] for k in range(n)] * 3, 2 * n)  # each listed pair bought together, nothing else
    vectors = SentenceEncoder(sentence_model).encode(texts)
    cfg = FinetuneConfig(hard_negatives=True, min_count=3, max_per_item=None, train_batch_size=4, epochs=1,
                         warmup_ratio=0.0)
    triples = co_purchase_text_pairs(x, texts, cfg, vectors=vectors)
    assert len(triples) >= n - 2 and all(len(t) == 3 for t in triples)
    for a, b, neg in triples:
        assert neg not in (a, b) and (a, neg) not in PAIRS and (neg, a) not in PAIRS, "never bought with a"
    before = _pair_cosines(sentence_model)
    after = _pair_cosines(finetune_encoder(sentence_model, triples, cfg))
    assert after.mean() > before.mean(), (before.mean(), after.mean())
    with pytest.raises(ValueError):
        co_purchase_text_pairs(x, texts, cfg)


def test_catalog_pairs() -> None:
    # Items 0 and 1 bought together; 2 and 3 never sold (new products: text only); 4 repeats 0's title.
    x = _baskets([[0, 1]] * 3 + [[4]] * 3, 5)
    texts = ["red mug", "blue saucer", "tea towel", "jam jar", "red mug"]
    cfg = FinetuneConfig(min_count=3, max_per_item=None)
    assert co_purchase_text_pairs(x, texts, cfg) == [("red mug", "blue saucer")]
    every = co_purchase_text_pairs(x, texts, cfg.model_copy(update={"catalog_pairs": 1.0}))
    assert every[0] == ("red mug", "blue saucer")
    assert sorted(every[1:]) == [(t, t) for t in sorted(set(texts))], "each distinct text once, unsold ones too"
    half = co_purchase_text_pairs(x, texts, cfg.model_copy(update={"catalog_pairs": 0.5}))
    assert len(half) == 1 + 2 and set(half[1:]) < set(every[1:])
    with pytest.raises(ValueError):
        co_purchase_text_pairs(x, texts, cfg.model_copy(update={"catalog_pairs": 0.5, "hard_negatives": True}),
                               vectors=np.eye(5, dtype=np.float32))


def test_related_texts_known_answer() -> None:
    # Items 0 and 3 share the text "mug": one product. It goes with "saucer" (item 1) beyond chance; the
    # hub "bag" (2) is in every basket (lift 1), "towel" (4) is bought with it alone, and item 5 has no text.
    texts = ["mug", "saucer", "bag", "mug", "towel", ""]
    x = _baskets([[0, 1, 2], [3, 1, 2], [2, 4], [2, 4], [2, 5]], 6)
    index, related = related_texts(x, texts)
    assert sorted(index) == ["bag", "mug", "saucer", "towel"]
    pairs = {(a, b) for a in index for b in index if related[index[a], index[b]]}
    assert pairs == {("mug", "saucer"), ("saucer", "mug"), ("mug", "mug"), ("saucer", "saucer"), ("towel", "towel")}


def test_masked_loss_is_mnrl_without_a_mask_and_drops_masked_negatives(sentence_model) -> None:
    import torch

    cfg = FinetuneConfig()
    batch = PAIRS[:4]
    columns = [sentence_model.tokenize([p[c] for p in batch]) for c in range(2)]
    none = np.zeros((4, 4), dtype=bool)
    with torch.no_grad():
        reference = _loss(sentence_model, cfg, None)(columns, None).item()
        plain = _masked_mnrl(sentence_model, columns, none, cfg).item()
        masked = none.copy()
        masked[0, 1] = True
        fewer = _masked_mnrl(sentence_model, columns, masked, cfg).item()
    assert abs(plain - reference) < 1e-5, (plain, reference)
    assert fewer < plain, "a negative left out of a softmax can only lower its loss"


def test_finetune_with_false_negatives_masked(sentence_model) -> None:
    texts = [a for a, _ in PAIRS] + [b for _, b in PAIRS]
    n = len(PAIRS)
    x = _baskets([[k, k + n] for k in range(n)] * 3 + [[0, 1 + n]] * 3, 2 * n)
    cfg = TINY.model_copy(update={"false_negatives": "mask", "min_count": 3, "max_per_item": 1})
    pairs = co_purchase_text_pairs(x, texts, cfg)
    related = finetune.false_negative_mask(x, texts, cfg)
    assert related[1][related[0][PAIRS[0][0]], related[0][PAIRS[1][1]]], "a pair beyond the cap is related"
    before = _pair_cosines(sentence_model)
    after = _pair_cosines(finetune_encoder(sentence_model, pairs, cfg, related=related))
    assert after.mean() > before.mean() + 0.02, (before.mean(), after.mean())
    with pytest.raises(ValueError):
        finetune_encoder(sentence_model, pairs, cfg)
