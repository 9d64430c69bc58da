"""Customer-profile mixture: which known customers a basket looks like, and what they buy.

Each training customer u has a profile, the number of their baskets containing each item c_ui
(or 0/1 history counts when the data have no baskets). A query basket q (a set of items) is
scored against every profile by its Dirichlet-smoothed likelihood (query likelihood retrieval,
Zhai & Lafferty 2001):

    log P(q | u) = Σ_{i ∈ q} log((c_ui + μ p_i) / (n_u + μ)),   p_i the background item share,

the posterior P(u | q) ∝ P(q | u)^(1/T) is kept for the `top_users` most likely customers, and
every item scores its mixture probability

    P(i | q) = Σ_u P(u | q) (c_ui + μ p_i) / (n_u + μ).

Unlike UserKNN's cosine neighbourhood, the posterior is sharp: a basket from a returning customer
mostly points at that customer, so the items they usually buy (a third of Online Retail's hidden
items) rank high. Anonymous baskets carry no profile and are left out; in orders without any customer ids each
basket is a profile (`shopper_rows`), and with no data at all it scores item popularity.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.base import ModelConfig, Recommender, shopper_rows

BATCH = 1000


class UserMixtureConfig(ModelConfig):
    mu: float = Field(default=10.0, gt=0, description="Dirichlet smoothing mass towards item popularity.")
    temperature: float = Field(default=1.0, gt=0, description="Posterior temperature (1 = Bayes).")
    top_users: int = Field(default=100, ge=1, description="Customers kept per query; the rest go to the background.")


class UserMixture(Recommender):
    """Learned state: `profiles_` (n_users, n_items) CSR of counts c_ui, `background_` (n_items,) p_i."""

    name = "usermix"
    Config = UserMixtureConfig

    def _fit(self, data: InteractionData) -> None:
        if data.n_baskets and (data.basket_user >= 0).any():
            known = np.flatnonzero(data.basket_user >= 0)
            owner = sp.csr_matrix((np.ones(len(known), np.float32), (data.basket_user[known], known)),
                                  shape=(data.n_users, data.n_baskets))
            x = sp.csr_matrix(data.basket_items > 0, dtype=np.float32)
            profiles = owner @ x
            counts = np.asarray(x.sum(axis=0)).ravel()
        else:
            profiles = sp.csr_matrix(shopper_rows(data, self.user_history_), dtype=np.float32)
            counts = np.asarray(profiles.sum(axis=0)).ravel()
        self.profiles_ = sp.csr_matrix(profiles, dtype=np.float32)
        self.profiles_.eliminate_zeros()
        background = counts + 1.0
        self.background_ = (background / background.sum()).astype(np.float32)

    def _derived(self) -> tuple[np.ndarray, sp.spmatrix, sp.csr_matrix, np.ndarray]:
        """(profile totals n_u, log-likelihood gains, smoothed-away profile probabilities, 1.0 for each product some
        customer bought), built once from the fitted state and reused by every call (not saved: derivable)."""
        cached = getattr(self, "_derived_cache", None)
        if cached is None or cached[0] is not self.profiles_:
            mu, prof = self.config.mu, self.profiles_
            totals = np.asarray(prof.sum(axis=1)).ravel()
            gain = prof.copy()
            gain.data = np.log1p(gain.data / (mu * self.background_[gain.indices]))
            probs = sp.csr_matrix(sp.diags(1.0 / (totals + mu)) @ prof, dtype=np.float32)
            bought = (np.asarray(prof.sum(axis=0)).ravel() > 0).astype(np.float32)
            self._derived_cache = cached = (prof, totals, gain.T, probs, bought)
        return cached[1], cached[2], cached[3], cached[4]

    def posterior(self, queries: sp.csr_matrix) -> sp.csr_matrix:
        """(q, n_users) CSR of P(u | query) over each row's `top_users` most likely customers."""
        mu = self.config.mu
        totals, gain_t, _, _ = self._derived()
        q = sp.csr_matrix(queries > 0, dtype=np.float32)
        size = np.diff(q.indptr).astype(np.float32)
        # The Σ log(μ p_i) term is the same for every customer and cancels in the posterior.
        ll = np.asarray((q @ gain_t).todense()) - size[:, None] * np.log(totals + mu)[None, :]
        ll /= self.config.temperature
        k = min(self.config.top_users, ll.shape[1])
        top = np.argpartition(-ll, k - 1, axis=1)[:, :k] if k < ll.shape[1] else np.tile(np.arange(k), (len(ll), 1))
        val = np.take_along_axis(ll, top, axis=1)
        val = np.exp(val - val.max(axis=1, keepdims=True))
        val /= val.sum(axis=1, keepdims=True)
        val[size == 0] = 0.0
        rows = np.repeat(np.arange(len(ll)), k)
        return sp.csr_matrix((val.ravel().astype(np.float32), (rows, top.ravel())), shape=ll.shape)

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        mu = self.config.mu
        totals, _, profile_probs, _ = self._derived()
        if not len(totals):  # no customers: the background alone, item popularity
            return np.tile(self.background_, (queries.shape[0], 1))
        out = np.zeros(queries.shape, dtype=np.float32)
        for s in range(0, queries.shape[0], BATCH):
            post = self.posterior(queries[s:s + BATCH])
            smooth = np.asarray(post @ (mu / (totals + mu))).ravel().astype(np.float32)
            out[s:s + BATCH] = np.asarray((post @ profile_probs).todense()) + smooth[:, None] * self.background_[None, :]
        return out

    def _scores_nothing(self, queries: sp.csr_matrix, scores: np.ndarray, exclude: sp.csr_matrix) -> np.ndarray:
        """A query of products no customer bought says nothing of who is shopping (its posterior would favour
        whoever bought least), so it gets the flagged best sellers."""
        nothing = super()._scores_nothing(queries, scores, exclude)
        if not self.profiles_.shape[0]:  # no customers: item popularity is the model's own answer
            return nothing
        bought = self._derived()[3]
        return nothing | (sp.csr_matrix(queries > 0, dtype=np.float32) @ bought == 0)
