"""Sites: *what* is masked — a layer, the axes that carry the variables, positions, a basis.

A :class:`Site` names a layer of a cut model plus

* ``axis`` — the axis (or axes) of the layer's output ``A float[m, ...]`` whose entries are
  the variables (axis 0 is always the input batch): the heads axis of ``[m, T, H, D]``,
  the channel axis 1 of an NCHW convolution, the feature axis of the residual stream.
  Several axes make one variable per index tuple (``n = ∏ sizes``). A penzai model's
  named axes may be given by name.
* ``positions`` — optional indices along ``position_axis`` (default 1, the token axis) where
  the mask applies; at every other position the activation is left untouched.
* ``basis`` — optional ``float[k, N]`` rows = directions in the feature space of ``axis``;
  variable ``j`` is direction ``j``'s component ``u_j`` (from the user's ``encoder``, default
  least squares ``U = A·pinv(W)``). Ablating ``j`` replaces ``u_j`` by its fill:
  ``Ã = A − Σ_{x_j = −1} (u_j − f_j) W_j``; the residual ``A − U W`` is always kept, so the
  all-kept mask reproduces the real activations (and outputs) exactly. A dictionary's or
  SAE's decoder directions with their encoder are this case, and so is the NMF concept path
  (:class:`~actspec_jax.concepts.ConceptProblem` equals this site with ``basis=W`` and
  ``encoder=basis.codes``; a test checks it).

How it works: a site is a *re-view* of the cut. :meth:`SiteView.apply` returns a
:class:`~actspec_jax.CutModel` whose activations carry the variables on their LAST axis
(variable axes moved to the end and flattened, or the codes of the basis), with a head that
undoes the re-view. Every fill (``zero``, ``mean`` = the per-variable mean over the inputs and
all other axes, ``resample``, an array) and every solver then works unchanged, and positions
are a fill that equals the clean value outside the chosen positions.

Choosing the axis — never a silent guess. The axis is resolved from the layer's shape:

1. ``axis=`` given: used (out-of-range or batch axis → :class:`AxisError`).
2. rank 2 ``[m, N]``: unambiguous, axis 1.
3. the cut marks its feature axis (``CutModel.feature_axis``): Flax linen, nnx and dm-haiku cuts
   mark the last axis, because their layers are features-last (``Dense``, ``Conv`` is NHWC). It
   is taken for rank 3 ``[m, T, N]``; for rank ≥ 4 only when the module at the cut is one of
   the family's dense or convolution layers (:func:`features_last_layer`) — a
   ``[m, T, heads, head_dim]`` output of any other module (a tap, an attention block) is rule 5.
4. rank 3 ``[m, T, N]`` on a cut that is not strict (plain functions): the last axis, the
   sequence layout of every JAX framework (kept for backward compatibility and documented).
5. otherwise — rank ≥ 4 from plain functions or from a Flax/haiku module of another kind, or
   rank ≥ 3 from a strict cut (Equinox is channels-first for convolutions, penzai names its
   axes) — :class:`AxisError` showing the layer's shape and asking for ``axis=``. An NCHW layer
   is therefore never silently masked along its width, nor attention heads along ``head_dim``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError
from actspec_jax.problems.cut_base import CutModel

__all__ = ["AxisError", "Site", "SiteView", "resolve_site", "site"]

AxisSpec = int | str | Sequence[int | str] | None

#: Module classes (Flax linen/nnx, dm-haiku) whose output is features-last at any rank by the
#: family's own convention: their last axis is taken for a plain layer name. Normalisation layers
#: are not among them: they keep their input's layout (a QK-norm on ``[m, T, H, E]``, an NCHW norm).
FEATURES_LAST_LAYERS = frozenset(
    {
        "Dense", "Linear",
        "Conv", "ConvTranspose", "ConvLocal", "Conv1D", "Conv2D", "Conv3D",
        "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    }
)  # fmt: skip


def features_last_layer(module: Any) -> bool:
    """``True`` when ``module`` is a dense or convolution layer of Flax or haiku with its
    channels last (a haiku convolution built with ``data_format='NCHW'`` is not), or declares its
    layout itself with a true ``features_last`` attribute (as the zoo's taps do)."""
    if module is None:
        return False
    if getattr(module, "features_last", None) is True:
        return True
    return type(module).__name__ in FEATURES_LAST_LAYERS and getattr(module, "channel_index", -1) == -1


class AxisError(ActSpecError):
    """The axis carrying the variables is ambiguous or invalid for the layer's shape."""


@dataclasses.dataclass(frozen=True, eq=False)
class Site:
    """A layer plus the axes, positions and basis that define the masked variables.

    Attributes:
      layer: the layer's name in the model (``None`` inside :func:`masked_problem` = the cut's).
      axis: axis index (or indices, or penzai axis names) carrying the variables; see the
        module docstring for what happens when it is ``None``.
      positions: indices (or index tuples) along ``position_axis`` where the mask applies.
      position_axis: the axis (or axes) ``positions`` index; default 1.
      basis: ``float[k, N]`` directions over the single feature ``axis``.
      encoder: ``float[..., N] -> float[..., k]`` codes of the directions (default least squares).
      name: label stem (default: the layer name).
      kind: label word per variable (default ``'dir'`` with a basis, else ``'unit'``).
    """

    layer: str | None = None
    axis: AxisSpec = None
    positions: Sequence[Any] | None = None
    position_axis: int | Sequence[int] = 1
    basis: Any = None
    encoder: Callable[[jax.Array], jax.Array] | None = None
    name: str | None = None
    kind: str | None = None

    @property
    def is_plain(self) -> bool:
        """No axis, positions or basis given: the layer's default variables."""
        return self.axis is None and self.positions is None and self.basis is None


def site(
    layer: str | None = None,
    axis: AxisSpec = None,
    *,
    positions: Sequence[Any] | None = None,
    position_axis: int | Sequence[int] = 1,
    basis: Any = None,
    encoder: Callable[[jax.Array], jax.Array] | None = None,
    name: str | None = None,
    kind: str | None = None,
) -> Site:
    """Build a :class:`Site`, e.g. ``site('block_0/attn', axis=2, name='block0.attn', kind='head')``."""
    return Site(layer, axis, positions, position_axis, basis, encoder, name, kind)


def as_site(layer: str | Site | None) -> Site:
    """A :class:`Site` from a layer name (or a site)."""
    return layer if isinstance(layer, Site) else Site(layer)


def _normalise(axis: Any, rank: int, shape: tuple, names: tuple[str, ...] | None, what: str) -> tuple:
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        if isinstance(a, str):
            if not names or a not in names:
                raise AxisError(
                    f"{what} {a!r} is not a named axis of this layer (shape {list(shape)}"
                    f"{', names ' + str(list(names)) if names else ', no axis names'}); pass an index."
                )
            a = names.index(a)
        a = int(a)
        if not -rank <= a < rank:
            raise AxisError(
                f"{what} {a} is out of range for a layer of shape {list(shape)}: axes are counted with "
                f"the input batch axis as 0, so the unit axis is one of 1..{rank - 1} (or -1..-{rank - 1})."
            )
        a %= rank
        if a == 0:
            raise AxisError(
                f"{what} 0 is the input batch axis of a layer of shape {list(shape)}; the variables "
                "must live on another axis."
            )
        out.append(a)
    if len(set(out)) != len(out):
        raise AxisError(f"{what} repeats an axis: {list(items)}.")
    return tuple(sorted(out))


def resolve_axes(
    s: Site,
    shape: tuple[int, ...],
    *,
    layer: str,
    feature_axis: int | None,
    strict: bool,
    names: tuple[str, ...] | None = None,
    module: Callable[[], Any] | None = None,
) -> tuple[int, ...]:
    """The variable axes of ``s`` for a layer of ``shape`` (rules in the module docstring);
    ``module()`` gives the module at the cut when rule 3 needs it for a layer of rank ≥ 4 (without
    it, a feature axis the cut marks is taken: ``cut_functions(feature_axis=…)`` states it)."""
    rank = len(shape)
    if rank < 2:
        raise AxisError(
            f"layer {layer!r} has shape {list(shape)}: it needs an input batch axis and at least one "
            "more axis carrying the variables."
        )
    if s.axis is not None:
        return _normalise(s.axis, rank, shape, names, "axis")
    if rank == 2:
        return (1,)
    kind = ""
    if feature_axis is not None:
        found = None if rank == 3 or module is None else module()
        if rank == 3 or module is None or features_last_layer(found):  # None: the user's own axis
            return _normalise(feature_axis, rank, shape, names, "the cut's feature axis")
        kind = f" (a {type(found).__name__})" if found is not None else ""
    if rank == 3 and not strict:
        return (2,)
    hint = f" (named {list(names)})" if names else ""
    raise AxisError(
        f"layer {layer!r}{kind} has shape {list(shape)}{hint}: which axis carries the variables? Pass "
        f"axis=…, e.g. site({layer!r}, axis=2) for attention heads [m, T, heads, head_dim], axis=1 "
        f"for channels-first [m, C, H, W], or axis={rank - 1} for features-last; the last axis is "
        "assumed at this rank only for the family's dense and convolution layers."
    )


@dataclasses.dataclass(frozen=True, eq=False)
class SiteView:
    """A resolved site: how the layer's output ``A`` maps to variables on the last axis.

    Attributes:
      layer: the layer name.
      shape: ``A``'s shape at construction (``[m, ...]``).
      axes: the variable axes (sorted, positive).
      identity: ``True`` when the view is the layer itself (single last axis, no basis).
      dictionary: ``float[k, N]`` or ``None``.
      encoder: codes of the directions, or ``None``.
      positions: ``bool`` array broadcastable to the view's activations (``True`` = masked
        position) or ``None`` (every position).
      labels: one label per variable.
    """

    layer: str
    shape: tuple[int, ...]
    axes: tuple[int, ...]
    identity: bool
    dictionary: jax.Array | None
    encoder: Callable[[jax.Array], jax.Array] | None
    positions: jax.Array | None
    labels: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.labels)

    # ------------------------------------------------------------------ re-view
    def _to_last(self, acts: jax.Array) -> jax.Array:
        """``A`` with the variable axes moved to the end, ``[m, ..., *var_shape]``."""
        k = len(self.axes)
        return jnp.moveaxis(acts, self.axes, tuple(range(acts.ndim - k, acts.ndim)))

    def _from_last(self, moved: jax.Array) -> jax.Array:
        k = len(self.axes)
        return jnp.moveaxis(moved, tuple(range(moved.ndim - k, moved.ndim)), self.axes)

    def codes(self, acts: jax.Array) -> jax.Array:
        """Basis codes ``float[m, ..., k]`` of ``A`` (feature axis moved last, then encoded)."""
        moved = self._to_last(acts)
        if self.encoder is not None:
            return jnp.asarray(self.encoder(moved), moved.dtype)
        return moved @ jnp.linalg.pinv(self.dictionary.astype(moved.dtype))

    def view(self, acts: jax.Array) -> tuple[jax.Array, Any]:
        """``(variables float[m, ..., n], extra)``: ``extra`` is what :meth:`unview` needs
        besides the variables (the kept residual for a basis, else ``None``)."""
        if self.identity:
            return acts, None
        if self.dictionary is None:
            moved = self._to_last(acts)
            return moved.reshape(*moved.shape[: moved.ndim - len(self.axes)], -1), None
        codes = self.codes(acts)
        residual = self._to_last(acts) - codes @ self.dictionary.astype(codes.dtype)
        return codes, residual

    def unview(self, variables: jax.Array, extra: Any) -> jax.Array:
        """The layer's output ``A`` from (possibly masked) variables."""
        if self.identity:
            return variables
        if self.dictionary is None:
            var_shape = tuple(self.shape[a] for a in self.axes)
            return self._from_last(variables.reshape(*variables.shape[:-1], *var_shape))
        return self._from_last(variables @ self.dictionary.astype(variables.dtype) + extra)

    def gate_fill(self, fill: jax.Array, variables: jax.Array) -> jax.Array:
        """Fill values restricted to the site's positions: the clean value elsewhere."""
        if self.positions is None:
            return fill
        return jnp.where(self.positions, jnp.broadcast_to(fill, variables.shape), variables)

    def apply(self, cut: Any, inputs: Any, activations: jax.Array) -> tuple[Any, Any, jax.Array]:
        """``(cut', inputs', variables)``: a cut whose last axis carries the variables.

        ``inputs'`` is ``inputs`` itself, or ``(inputs, residual)`` for a basis (the residual
        travels with each input, so every solver's row indexing keeps it aligned).
        """
        if self.identity:
            return cut, inputs, activations
        variables, extra = self.view(activations)
        view, head = self, cut.head
        if extra is None:

            def new_head(params: Any, v: jax.Array, x: Any) -> jax.Array:
                return head(params, view.unview(v, None), x)

            def new_features(params: Any, x: Any) -> jax.Array:
                return view.view(cut.features(params, x))[0]

            new_inputs = inputs
        else:

            def new_head(params: Any, v: jax.Array, x: Any) -> jax.Array:
                raw, residual = x
                return head(params, view.unview(v, residual), raw)

            def new_features(params: Any, x: Any) -> jax.Array:
                return view.view(cut.features(params, x[0]))[0]

            new_inputs = (inputs, extra)
        new = CutModel(
            features=new_features, head=new_head, params=cut.params, layer=cut.layer, feature_axis=-1
        )
        return new, new_inputs, variables

    def describe(self) -> dict[str, Any]:
        return {
            "site_axes": list(self.axes),
            "site_basis": None if self.dictionary is None else [int(s) for s in self.dictionary.shape],
            "site_positions": self.positions is not None,
        }


def _position_mask(s: Site, shape: tuple, axes: tuple, layer: str) -> jax.Array | None:
    """``bool`` mask over the view's non-variable axes, ``True`` at the chosen positions."""
    if s.positions is None:
        return None
    rank = len(shape)
    paxes = _normalise(s.position_axis, rank, shape, None, "position_axis")
    if set(paxes) & set(axes):
        raise AxisError(
            f"position_axis {list(paxes)} is also a variable axis {list(axes)} of layer {layer!r}."
        )
    sizes = tuple(shape[a] for a in paxes)
    sel = np.zeros(sizes, bool)
    for p in s.positions:
        parts = p if isinstance(p, (tuple, list)) else (p,)
        if any(isinstance(i, bool) or not isinstance(i, (numbers.Integral, np.integer)) for i in parts):
            raise AxisError(f"position {p!r} must be a whole index (or a tuple of them), e.g. 3 or -1.")
        idx = tuple(int(i) for i in parts)
        if len(idx) != len(paxes) or any(not -z <= i < z for i, z in zip(idx, sizes)):
            raise AxisError(
                f"position {p!r} does not index the position axes {list(paxes)} of sizes "
                f"{list(sizes)} in layer {layer!r} (shape {list(shape)})."
            )
        sel[idx] = True
    if not sel.any():
        raise AxisError("positions is empty: give at least one position, or None for all of them.")
    # The view keeps the non-variable axes in order and appends the variables (one axis).
    rest = [a for a in range(rank) if a not in axes]
    view_shape = [1] * (len(rest) + 1)
    for a, z in zip(paxes, sizes):
        view_shape[rest.index(a)] = z
    return jnp.asarray(sel.reshape(view_shape))


def _labels(s: Site, layer: str, shape: tuple, axes: tuple, k: int | None) -> tuple[str, ...]:
    stem = s.name or layer
    if s.positions is not None:
        pos = [p if isinstance(p, (tuple, list)) else (p,) for p in s.positions]
        text = [",".join(str(int(i)) for i in p) for p in pos]
        stem += f"@pos{text[0]}" if len(text) == 1 else "@pos[" + ";".join(text) + "]"
    if k is not None:
        return tuple(f"{stem}.{s.kind or 'dir'}[{j}]" for j in range(k))
    kind = s.kind or "unit"
    var_shape = tuple(shape[a] for a in axes)
    return tuple(f"{stem}.{kind}[{','.join(str(i) for i in idx)}]" for idx in np.ndindex(*var_shape))


#: Singular values below this share of the largest make a basis rank-deficient.
RANK_TOL = 1e-6


def check_basis_rank(dictionary: jax.Array, layer: str) -> None:
    """Without an encoder the codes are least squares, ``U = A·pinv(W)``, which identify each
    direction only when the rows of ``W: [k, N]`` are linearly independent (rank ``k ≤ N``):
    a rank-deficient or overcomplete basis (an SAE's decoder) would split a direction's code among
    the directions that share its span, silently. Refused with the fix; traced bases pass."""
    if isinstance(dictionary, jax.core.Tracer):
        return
    w = np.asarray(dictionary, np.float64)
    if not np.all(np.isfinite(w)):
        raise ActSpecError(f"basis for layer {layer!r} holds NaN/inf entries.")
    k, size = w.shape
    sv = np.linalg.svd(w, compute_uv=False)
    rank = int(np.sum(sv > RANK_TOL * max(float(sv.max(initial=0.0)), 1e-300)))
    if rank < k:
        why = f"{k} directions over {size} features" if k > size else f"{k} directions of rank {rank}"
        raise ActSpecError(
            f"basis for layer {layer!r} is {'overcomplete' if k > size else 'rank-deficient'} ({why}), so "
            "least-squares codes do not identify each direction. Pass encoder= (e.g. an SAE's encoder, "
            "codes = encoder(A)), or keep linearly independent directions only."
        )


def resolve_site(
    s: Site,
    shape: tuple[int, ...],
    *,
    layer: str,
    feature_axis: int | None = None,
    strict: bool = False,
    names: tuple[str, ...] | None = None,
    module: Callable[[], Any] | None = None,
) -> SiteView:
    """Resolve ``s`` against a layer output of ``shape`` (see the module docstring)."""
    shape = tuple(int(z) for z in shape)
    axes = resolve_axes(
        s, shape, layer=layer, feature_axis=feature_axis, strict=strict, names=names, module=module
    )
    dictionary = None
    if s.basis is not None:
        dictionary = jnp.asarray(s.basis)
        if len(axes) != 1:
            raise AxisError(f"a basis spans one feature axis; got axes {list(axes)} for layer {layer!r}.")
        size = shape[axes[0]]
        if dictionary.ndim != 2 or dictionary.shape[1] != size:
            raise ActSpecError(
                f"basis must be float[k, {size}] (rows = directions over axis {axes[0]} of layer {layer!r}, "
                f"shape {list(shape)}); got shape {list(dictionary.shape)}."
            )
        if s.encoder is None:
            check_basis_rank(dictionary, layer)
    elif s.encoder is not None:
        raise ActSpecError("encoder= needs basis= (the directions whose codes it computes).")
    identity = dictionary is None and axes == (len(shape) - 1,)
    positions = _position_mask(s, shape, axes, layer)
    if s.is_plain or (identity and s.name is None and s.kind is None and positions is None):
        labels = tuple(f"{layer}[{i}]" for i in range(shape[axes[0]]))
    else:
        labels = _labels(s, layer, shape, axes, None if dictionary is None else int(dictionary.shape[0]))
    if dictionary is None and math.prod(shape[a] for a in axes) != len(labels):  # pragma: no cover
        raise AssertionError("label count mismatch")
    return SiteView(
        layer=layer,
        shape=shape,
        axes=axes,
        identity=identity,
        dictionary=dictionary,
        encoder=s.encoder,
        positions=positions,
        labels=labels,
    )
