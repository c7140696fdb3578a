"""Moved to :mod:`actspec_jax.reports.plots_indices`; this old import path is an alias of that module."""

import sys

from actspec_jax.reports import plots_indices as _moved

sys.modules[__name__] = _moved
