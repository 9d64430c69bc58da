"""Text layer (DESIGN §3 "text"): catalog text encoders, an ANN index for similar-by-content and
semantic product search, contrastive fine-tuning on co-purchases, and content recommenders.

Nothing here imports torch or sentence-transformers at module import time; the sentence encoder
loads them on first use, so the TF-IDF parts work without them.

Modules:
    encoders: `catalog_texts`, `item_texts`, `TfidfEncoder`, `SentenceEncoder`, `EmbeddingCache`.
    ann: `VectorIndex` (hnswlib or exact), `ProductSearch` (free text → products).
    finetune: `co_purchase_pairs`, `FinetuneConfig`, `finetune_encoder`.
    models: the `content`, `content-finetuned` and `tfidf` recommenders.
"""
