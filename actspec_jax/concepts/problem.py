"""ActSpec over concepts: the variables are the k concepts of a layer, not its neurons.

For inputs ``1..m`` with layer activations ``A`` (``float[m, ..., N]``; token axes allowed),
a concept basis (``offset``, unit-norm dictionary ``W float[k, N]``) and codes
``U = encode(A − offset, W)`` (``float[m, ..., k]``), a mask ``x ∈ {−1,+1}^k`` (+1 =
concept kept) gives the activations

    Ã(x) = offset + Σ_j [x_j = +1] u_j W_j + Σ_j [x_j = −1] f_j W_j + residual
         = A − Σ_j [x_j = −1] (u_j − f_j) W_j,      residual = A − offset − U W,

with fill ``f_j = 0`` (``'zero'``: the concept is removed) or the mean code of concept
``j`` over all rows (``'mean'``). The mask applies at every token position. The residual
is always kept, so the all-kept mask reproduces the real activations — and therefore the
model's real outputs — exactly (the second form adds an exact zero). Then, as in
:class:`~actspec_jax.MaskedProblem`, ``f(x) = aggregate_j select(head(Ã_j(x)))``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import jax
import jax.numpy as jnp

from actspec_jax.concepts.basis import ConceptBasis, Shift, fit_basis
from actspec_jax.errors import ActSpecError
from actspec_jax.problems._selected import SelectedOutputProblem, check_request, output_labels_for
from actspec_jax.problems.base import Problem
from actspec_jax.problems.cut import CutModel
from actspec_jax.problems.outputs import OutputSelector

__all__ = ["ConceptProblem", "concept_problem", "concept_spectrum"]

ConceptFill = Literal["zero", "mean"]


@jax.tree_util.register_pytree_node_class
class ConceptProblem(SelectedOutputProblem):
    """Model cut at a layer + concept basis + inputs + output → ``f(mask over concepts)``.

    Build with :meth:`from_cut`. Arrays are pytree leaves (the problem passes through
    ``jit``); the head, selector and settings are static.

    Attributes:
      activations: ``float32[m, ..., N]`` the real activations of the inputs.
      codes: ``float32[m, ..., k]`` their concept codes.
      fill_codes: ``float32[k]`` code each ablated concept is set to.
      dictionary: ``float32[k, N]`` the concepts.
    """

    def __init__(
        self,
        *,
        head: Any,
        params: Any,
        inputs: Any,
        activations: jax.Array,
        codes: jax.Array,
        fill_codes: jax.Array,
        dictionary: jax.Array,
        selector: OutputSelector,
        aggregate: str,
        labels: tuple[str, ...],
        info: str,
        out_labels: tuple[str, ...] | None,
    ) -> None:
        self.head = head
        self.params = params
        self.inputs = inputs
        self.activations = activations
        self.codes = codes
        self.fill_codes = fill_codes
        self.dictionary = dictionary
        self.selector = selector
        self.aggregate = aggregate
        self._labels = labels
        self._info = info
        self._out_labels = out_labels

    @classmethod
    def from_cut(
        cls,
        cut: CutModel,
        inputs: Any,
        *,
        output: str | OutputSelector,
        basis: ConceptBasis | None = None,
        num_concepts: int | None = None,
        key: jax.Array | None = None,
        fit_inputs: Any = None,
        shift: Shift = "none",
        fill: ConceptFill = "zero",
        aggregate: Literal["mean", "none"] = "mean",
        labels: list[str] | None = None,
        alpha: float = 1e-2,
        l1_ratio: float = 0.0,
        max_iter: int = 500,
        tol: float = 1e-4,
    ) -> ConceptProblem:
        """Build the problem (computes activations and codes once).

        Either pass a fitted ``basis`` (:func:`fit_basis`), or ``num_concepts`` and ``key``
        to fit one here on ``fit_inputs`` (default: the analysed ``inputs``).

        Args:
          cut: the model split at a layer (:func:`actspec_jax.cut_model`).
          inputs: the inputs whose outputs are explained (leading batch axis ``m``).
          output: what to explain (``'logit:7'``, ``'indicator:7'``, ``'logit_diff:1-0'``, …).
          basis: a fitted concept basis for this layer.
          num_concepts, key, fit_inputs, shift: fit a basis here instead (with the NMF settings
            ``alpha``, ``l1_ratio``, ``max_iter``, ``tol`` of :func:`fit_basis`).
          fill: ``'zero'`` (remove the concept) or ``'mean'`` (set its code to its mean).
          aggregate: ``'mean'`` over inputs, or ``'none'`` (one function per input).
          labels: optional names of the concepts.
        """
        selector = check_request(output, aggregate, inputs)
        if fill not in ("zero", "mean"):
            raise ActSpecError(f"concept fill must be 'zero' or 'mean', got {fill!r}.")
        activations = jnp.asarray(cut.features(cut.params, inputs), jnp.float32)
        if basis is None:
            if num_concepts is None or key is None:
                raise ActSpecError(
                    "pass a fitted basis=fit_basis(...), or num_concepts=k and key=jax.random.key(…) "
                    "to fit one on the inputs."
                )
            fit_acts = (
                activations
                if fit_inputs is None
                else jnp.asarray(cut.features(cut.params, fit_inputs), jnp.float32)
            )
            basis = fit_basis(
                fit_acts, num_concepts, key=key, shift=shift, alpha=alpha, l1_ratio=l1_ratio,
                max_iter=max_iter, tol=tol,
            )  # fmt: skip
        elif num_concepts is not None and int(num_concepts) != basis.num_concepts:
            raise ActSpecError(f"num_concepts={num_concepts} but the basis has {basis.num_concepts}.")
        N = activations.shape[-1]
        if basis.dictionary.shape[1] != N:
            raise ActSpecError(
                f"the basis has {basis.dictionary.shape[1]} neurons but layer {cut.layer!r} has {N}; "
                "fit the basis on this layer."
            )
        k = basis.num_concepts
        codes = basis.codes(activations)
        fill_codes = jnp.zeros((k,), jnp.float32) if fill == "zero" else codes.reshape(-1, k).mean(axis=0)
        if labels is not None and len(labels) != k:
            raise ActSpecError(f"got {len(labels)} labels for {k} concepts.")
        concept_labels = tuple(labels) if labels is not None else tuple(f"concept {j}" for j in range(k))

        m = activations.shape[0]
        outputs = jax.eval_shape(cut.head, cut.params, activations, inputs)
        out_labels = output_labels_for(selector, outputs, m, aggregate)
        info = json.dumps(
            {
                "layer": cut.layer,
                "variables": "concepts",
                "num_concepts": int(k),
                "neurons_in_layer": int(N),
                "output": selector.describe(),
                "fill": fill,
                "aggregate": aggregate,
                "num_inputs": int(m),
                "activation_shape": [int(s) for s in activations.shape],
                "fit_relative_error": float(basis.relative_error),
                "relative_error": float(basis.error(activations)),
                "offset": "none" if not bool(jnp.any(basis.offset != 0)) else "per-neuron",
            }
        )
        problem = cls(
            head=cut.head,
            params=cut.params,
            inputs=inputs,
            activations=activations,
            codes=codes,
            fill_codes=fill_codes,
            dictionary=basis.dictionary,
            selector=selector,
            aggregate=aggregate,
            labels=concept_labels,
            info=info,
            out_labels=out_labels,
        )
        problem.check_unmasked_outputs()
        return problem

    # ------------------------------------------------------------------ Problem API
    @property
    def n(self) -> int:
        return int(self.dictionary.shape[0])

    @property
    def num_inputs(self) -> int:
        return int(self.activations.shape[0])

    def masked_activations(self, mask: jax.Array) -> jax.Array:
        """``Ã(x) = A − Σ_j [x_j = −1] (u_j − f_j) W_j`` for one mask ``float[k]``."""
        removed = jnp.where(mask < 0, self.codes - self.fill_codes, 0.0)
        return self.activations - removed @ self.dictionary

    def outputs(self, mask: jax.Array) -> jax.Array:
        """The model's outputs ``[m, ..., classes]`` with the concepts of ``mask`` ablated."""
        return self.head(self.params, self.masked_activations(mask), self.inputs)

    # ------------------------------------------------------------------ pytree
    def tree_flatten(self):
        children = (self.params, self.inputs, self.activations, self.codes, self.fill_codes, self.dictionary)
        aux = (self.head, self.selector, self.aggregate, self._labels, self._info, self._out_labels)
        return children, aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        params, inputs, activations, codes, fill_codes, dictionary = children
        head, selector, aggregate, labels, info, out_labels = aux
        return cls(
            head=head,
            params=params,
            inputs=inputs,
            activations=activations,
            codes=codes,
            fill_codes=fill_codes,
            dictionary=dictionary,
            selector=selector,
            aggregate=aggregate,
            labels=labels,
            info=info,
            out_labels=out_labels,
        )


#: Shorthand for :meth:`ConceptProblem.from_cut` (the same function, the same signature).
concept_problem = ConceptProblem.from_cut


def concept_spectrum(
    problem: Problem, *, key: jax.Array | None = None, exact_max: int = 24, solver: Any = None
) -> Any:
    """Spectrum of a concept problem: exact (all ``2^k`` masks + FWHT) for ``k ≤ exact_max``,
    otherwise ``solver`` (default ``GoldreichLevin()``; any solver taking ``key=``; needs ``key``)."""
    from actspec_jax.solvers.exact.solver import ExactSolver

    if problem.n <= exact_max:
        return ExactSolver(max_n=max(exact_max, problem.n))(problem, key=key)
    if key is None:
        raise ActSpecError(
            f"{problem.n} concepts exceed exact_max={exact_max}: the search needs key=jax.random.key(…)."
        )
    if solver is None:
        from actspec_jax.solvers.gl.search import GoldreichLevin

        solver = GoldreichLevin()
    return solver(problem, key=key)
