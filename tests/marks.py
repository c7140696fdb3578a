"""Shared pytest marks."""

import pytest

#: A test whose settings are tight on purpose: its IncompleteResultWarning is expected, not noise
#: (pyproject.toml turns any other one into an error).
incomplete_expected = pytest.mark.filterwarnings("ignore::actspec_jax.diagnostics.IncompleteResultWarning")
