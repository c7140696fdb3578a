"""Moved to :mod:`actspec_jax.runs` (split into config, inputs, pipeline and report_writer).

This old import path re-exports the public names of the former ``runner`` module.
"""

from actspec_jax import runs as _runs
from actspec_jax.runs import *  # noqa: F403  (the old public names, listed once in runs.__all__)

__all__ = list(_runs.__all__)
