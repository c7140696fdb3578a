"""Report folders and figures: the third layer, shared by every command that writes results.

* :mod:`~actspec_jax.reports.report` — :class:`~actspec_jax.reports.report.Report` (``summary.md``,
  PNG figures, JSON, a self-contained ``report.html``) and the standard sections of a spectrum;
* :mod:`~actspec_jax.reports.plots` — figures of one spectrum (matplotlib ``Figure`` objects);
* :mod:`~actspec_jax.reports.plots_indices` — figures of Shapley and interaction indices.

Modules here import the core and :mod:`actspec_jax.analysis`, never the runs or the command
line (docs/architecture.md).
"""
