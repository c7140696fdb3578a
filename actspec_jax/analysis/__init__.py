"""Analyses that read a spectrum (and, where they measure, its problem): the second layer.

* :mod:`~actspec_jax.analysis.metrics` — faithfulness R² of a sparse spectrum on held-out masks;
* :mod:`~actspec_jax.analysis.indices` — Shapley, Banzhaf and interaction indices, exactly;
* :mod:`~actspec_jax.analysis.ablation` — deletion (faithfulness) curves and neuron orderings;
* :mod:`~actspec_jax.analysis.firing` — the inputs a subset matters for, the tokens it fires on.

Modules here import the core (``problems``, ``transforms``, ``solvers``, ``spectrum``) and
each other, never the reports, the runs or the command line (docs/architecture.md).
"""
