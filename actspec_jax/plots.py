"""Moved to :mod:`actspec_jax.reports.plots`; this old import path is an alias of that module."""

import sys

from actspec_jax.reports import plots as _moved

sys.modules[__name__] = _moved
