"""The :class:`CutModel` type: a model split at one layer into ``features`` and ``head``.

Every model family's cut (:mod:`actspec_jax.problems.cut` for Flax and plain functions,
:mod:`actspec_jax.problems.cut_pytree` for Equinox and penzai, :mod:`actspec_jax.problems.cut_haiku`)
returns one; sites (:mod:`actspec_jax.problems.sites`) rewrap it. It lives in its own module so
that those import it without importing each other, with what they share: the output check and
:func:`split_static_leaves` (the array/static split of a parameter tree).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from actspec_jax.errors import ActSpecError

if TYPE_CHECKING:
    from actspec_jax.problems.sites import Site

__all__ = ["CutModel"]

Params = Any
Inputs = Any


@dataclasses.dataclass(frozen=True, eq=False)
class CutModel:
    """A model split at one layer. See the module docstring for the two functions.

    Attributes:
      features: ``(params, inputs) -> float[..., n]``.
      head: ``(params, activations, inputs) -> outputs``.
      params: the parameters (any pytree) both functions take.
      layer: name of the layer the model was cut at.
      feature_axis: the axis the model family marks as its feature axis (Flax: ``-1``, every
        Flax layer is features-last), or ``None`` (see :mod:`actspec_jax.problems.sites`).
      strict_axes: ``True`` when the family has no layout convention (Equinox, penzai): any
        layer of rank ≥ 3 then needs an explicit ``axis``.
      site: the :class:`~actspec_jax.Site` the cut was made for (``None`` = the plain layer).
      family: the model family, for messages (``'linen'``, ``'nnx'``, ``'functions'``, …).
      axis_names: optional ``inputs -> names`` of the layer's axes (penzai's named axes),
        so a site may give ``axis='heads'``.
      layer_type: optional ``inputs -> module`` at the cut (Flax, haiku), found when needed: a
        layer of rank ≥ 4 is taken features-last without asking only when it is one of the
        family's dense or convolution layers
        (:func:`~actspec_jax.problems.sites.features_last_layer`).
    """

    features: Callable[[Params, Inputs], jax.Array]
    head: Callable[[Params, jax.Array, Inputs], jax.Array]
    params: Params
    layer: str
    feature_axis: int | None = None
    strict_axes: bool = False
    site: Site | None = None
    family: str = "functions"
    axis_names: Callable[[Inputs], tuple[str, ...]] | None = None
    layer_type: Callable[[Inputs], Any] | None = None

    def __repr__(self) -> str:
        """One line: the layer, the family, the site and the size of the parameters (not their values)."""
        leaves = [leaf for leaf in jax.tree_util.tree_leaves(self.params) if hasattr(leaf, "size")]
        size = sum(int(leaf.size) for leaf in leaves)
        site = "" if self.site is None or self.site.is_plain else f", site={self.site!r}"
        return (
            f"CutModel(layer={self.layer!r}, family={self.family!r}{site}, "
            f"params=<{len(leaves)} arrays, {size:,} values>)"
        )

    def activations(self, inputs: Inputs) -> jax.Array:
        """The layer's activations on ``inputs`` with this model's parameters."""
        return self.features(self.params, inputs)

    def outputs(self, activations: jax.Array, inputs: Inputs) -> jax.Array:
        """Model outputs with the layer's output replaced by ``activations``."""
        return self.head(self.params, activations, inputs)


def _check_array_output(value: Any, layer: str) -> jax.Array:
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise ActSpecError(
            f"layer {layer!r} returns a {type(value).__name__}, not a single array; cut at a "
            "sub-module whose output is one array with neurons on the last axis."
        )
    if value.ndim < 1:
        raise ActSpecError(f"layer {layer!r} returns a scalar; it has no neuron axis to mask.")
    return value


def _is_array_leaf(leaf: Any) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, numbers.Number))


def split_static_leaves(
    params: Params, features: Callable, head: Callable
) -> tuple[Params, Callable, Callable]:
    """``params`` with its non-array leaves (an Equinox module's activation functions, shapes,
    names) set to ``None`` and kept in the closures of ``features`` and ``head``, which see the
    whole tree again — the ``eqx.partition``/``eqx.combine`` split, so nothing static reaches
    ``jax.jit``. Trees of arrays only are returned unchanged."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    if all(_is_array_leaf(leaf) for leaf in leaves):
        return params, features, head
    static = [None if _is_array_leaf(leaf) else leaf for leaf in leaves]
    arrays = treedef.unflatten([leaf if _is_array_leaf(leaf) else None for leaf in leaves])

    def combine(p: Params) -> Params:
        got = jax.tree_util.tree_flatten(p, is_leaf=lambda x: x is None)[0]
        if len(got) != len(static):
            raise ActSpecError(
                "cut_functions: the parameters passed in have another structure than the cut's params "
                f"({len(got)} leaves, expected {len(static)})."
            )
        return treedef.unflatten([s if s is not None else g for g, s in zip(got, static)])

    return (
        arrays,
        lambda p, x: features(combine(p), x),
        lambda p, a, x: head(combine(p), a, x),
    )
