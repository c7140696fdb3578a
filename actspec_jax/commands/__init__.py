"""Sub-commands of the ``actspec`` command line (one module each)."""
