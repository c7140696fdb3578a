"""One tiny attention + MLP model written in every model family, with a planted AND.

Per example ``x float[T, D]`` (features 0 and 1 are zero in the inputs):

* attention with ``H = 3`` heads of size ``DH = 2``: real queries and keys, values
  ``v = x·Wv + 1`` with ``Wv = 0`` — so every head's output is all ones whatever it attends
  to, and ``0`` when zero-ablated;
* output projection: head ``HEADS[0]``'s mean → residual feature 0, head ``HEADS[1]``'s
  mean → feature 1 (head 1 is wired to nothing); ``r = x + attn``;
* MLP ``h = relu(r·W1)``: unit 0 reads feature 0, unit 1 reads feature 1, units 2–3 read
  the random features 2–3;
* readout of the pooled units ``p = mean_t h``: ``logit_0 = 4·relu(p0 + p1 − 1) − p0 − p1``,
  ``logit_1 = p2 + p3``.

Masking heads (or MLP units 0, 1) with the zero fill, ``logit_0 = 4·AND − …`` has the Walsh
expansion ``x_a/2 + x_b/2 + x_a·x_b``: the pair is the top coefficient, exactly 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

T, D, H, DH, U = 5, 4, 3, 2, 4
HEADS = (0, 2)
UNITS = (0, 1)


def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    wo = np.zeros((H, DH, D), np.float32)
    wo[HEADS[0], :, 0] = 1 / DH
    wo[HEADS[1], :, 1] = 1 / DH
    w1 = np.zeros((D, U), np.float32)
    w1[0, 0] = w1[1, 1] = 1.0
    w1[2:, 2:] = rng.normal(size=(2, 2))
    return {
        "wq": rng.normal(size=(D, H, DH)).astype(np.float32) * 0.5,
        "wk": rng.normal(size=(D, H, DH)).astype(np.float32) * 0.5,
        "wv": np.zeros((D, H, DH), np.float32),
        "bv": np.ones((H, DH), np.float32),
        "wo": wo,
        "w1": w1,
    }


def inputs(m: int = 6) -> jax.Array:
    x = jax.random.normal(jax.random.key(1), (m, T, D))
    return x.at[..., :2].set(0.0)


def heads_of(x, wq, wk, wv, bv):
    """``[..., T, H, DH]`` head outputs of ``x [..., T, D]``."""
    q = jnp.einsum("...td,dhe->...the", x, wq)
    k = jnp.einsum("...td,dhe->...the", x, wk)
    v = jnp.einsum("...td,dhe->...the", x, wv) + bv
    probs = jax.nn.softmax(jnp.einsum("...the,...she->...hts", q, k) / np.sqrt(DH), axis=-1)
    return jnp.einsum("...hts,...she->...the", probs, v)


def project(heads, wo):
    return jnp.einsum("...the,hed->...td", heads, wo)


def readout(h):
    """``[..., T, U]`` units → ``[..., 2]`` logits."""
    p = h.mean(axis=-2)
    and_ = 4 * jax.nn.relu(p[..., 0] + p[..., 1] - 1) - p[..., 0] - p[..., 1]
    return jnp.stack([and_, p[..., 2] + p[..., 3]], axis=-1)


def check_planted(problem, planted, solver=None):
    """The planted pair is the top coefficient (= 1) and the all-kept mask is the model."""
    import actspec_jax as asj

    spec = (solver or asj.ExactSolver())(problem)
    coefs = spec.to_dict()
    top = max(coefs, key=lambda s: abs(coefs[s]))
    assert top == tuple(planted), (top, coefs)
    np.testing.assert_allclose(coefs[top], 1.0, atol=1e-4)
    np.testing.assert_allclose(coefs[(planted[0],)], 0.5, atol=1e-4)
    return spec
