"""Moved to :mod:`actspec_jax.runs.locks`; this old import path is an alias of that module."""

import sys

from actspec_jax.runs import locks as _moved

sys.modules[__name__] = _moved
