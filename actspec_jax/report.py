"""Moved to :mod:`actspec_jax.reports.report`; this old import path is an alias of that module."""

import sys

from actspec_jax.reports import report as _moved

sys.modules[__name__] = _moved
