"""Bridges to other libraries (optional extras; nothing here is imported by the core).

* :mod:`actspec_jax.interop.shapiq` — shapiq ``InteractionValues`` ↔ spectra, and our
  problems as shapiq games (``pip install 'actspec_jax[interop]'``).
"""
