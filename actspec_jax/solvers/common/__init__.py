"""What every solver shares: settings rules, memory budgets, checkpoints, held-out R², degree
profiles, residual passes and device meshes.

* :mod:`~actspec_jax.solvers.common.settings` — the rules that check solver settings;
* :mod:`~actspec_jax.solvers.common.validate` — PRNG-key and problem checks;
* :mod:`~actspec_jax.solvers.common.memory` — chunk sizes under a memory budget;
* :mod:`~actspec_jax.solvers.common.checkpoint` — atomic, fingerprinted checkpoint files;
* :mod:`~actspec_jax.solvers.common.sharding` — mask meshes over devices and hosts;
* :mod:`~actspec_jax.solvers.common.heldout` — held-out R² on fresh uniform masks;
* :mod:`~actspec_jax.solvers.common.degree_profile`, ``profile_stats`` — the degree profile;
* :mod:`~actspec_jax.solvers.common.residual` — residual passes over any large-n solver.

Modules here import the problems, the transforms and the spectrum, never a solver's own
sub-package (docs/architecture.md).
"""
