"""Moved to :mod:`actspec_jax.analysis.indices`; this old import path is an alias of that module."""

import sys

from actspec_jax.analysis import indices as _moved

sys.modules[__name__] = _moved
