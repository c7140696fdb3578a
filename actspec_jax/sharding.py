"""Moved to :mod:`actspec_jax.solvers.sharding`; this old import path is an alias of that module."""

import sys

from actspec_jax.solvers import sharding as _moved

sys.modules[__name__] = _moved
