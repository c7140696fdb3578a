"""Sphinx configuration of the actspec_jax documentation site.

Why Sphinx: the package's docstrings are reStructuredText with Google-style sections, which
autodoc + napoleon read as they are; ``sphinx.ext.doctest`` executes the guides' examples; MyST
reads the Markdown pages. Build (warnings are errors)::

    pip install ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html      # the site
    ACTSPEC_TINY=1 sphinx-build -W --keep-going -b doctest docs docs/_build/doctest  # examples

The API reference is generated at build time from the ``__all__`` of each public face
(:data:`REFERENCE_PAGES`), so a new public name appears without editing a page: each name is
documented once, on the first page that lists it, and later pages point to it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import actspec_jax  # noqa: E402

project = "actspec_jax"
author = "the actspec_jax authors"
copyright = "2026, the actspec_jax authors"
release = actspec_jax.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "mnist/*.md", "sentiment/*.md", "reference/README.md"]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
suppress_warnings = ["myst.xref_missing"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_inherit_docstrings = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
napoleon_attr_annotations = False

html_theme = "alabaster"
html_title = f"actspec_jax {release}"
html_static_path: list[str] = []

doctest_global_setup = """
import os
os.environ.setdefault("ACTSPEC_TINY", "1")
import jax
import jax.numpy as jnp
import numpy as np
import actspec_jax as asj
"""

#: (file stem, title, module, introduction) of each API reference page, in reading order.
REFERENCE_PAGES: list[tuple[str, str, str, str]] = [
    ("actspec_jax", "actspec_jax", "actspec_jax", "The top-level names: problems, solvers, results, errors."),
    ("problems", "Problems", "actspec_jax.problems", "Functions of a ±1 mask; cutting a model at a site."),
    ("solvers", "Solvers", "actspec_jax.solvers", "Exact, compressive and Goldreich–Levin solvers."),
    ("spectrum", "Spectrum", "actspec_jax.spectrum", "The result: sparse Fourier terms, their file format."),
    ("transforms", "Transforms", "actspec_jax.transforms", "Walsh–Hadamard and Möbius transforms, subsets."),
    ("diagnostics", "Diagnostics", "actspec_jax.diagnostics", "Warnings recorded in a result."),
    ("errors", "Errors", "actspec_jax.errors", "The exceptions, each naming the problem and the fix."),
    ("metrics", "Faithfulness", "actspec_jax.analysis.metrics", "Held-out R² of a sparse spectrum."),
    ("indices", "Interaction indices", "actspec_jax.analysis.indices", "Shapley, Banzhaf, interactions."),
    ("ablation", "Ablation curves", "actspec_jax.analysis.ablation", "Deletion curves and orderings."),
    ("firing", "Firing", "actspec_jax.analysis.firing", "The inputs and tokens a subset fires on."),
    ("report", "Reports", "actspec_jax.reports.report", "Report folders and their standard sections."),
    ("plots", "Figures", "actspec_jax.reports.plots", "The figures of a report."),
    ("plots_indices", "Index figures", "actspec_jax.reports.plots_indices", "Interaction-index figures."),
    ("concepts", "Concept bases", "actspec_jax.concepts", "Sparse dictionaries over a layer."),
    ("layers", "Layer similarity", "actspec_jax.layers", "Cross-layer similarity (CKA, Gromov–Wasserstein)."),
    ("models", "Models", "actspec_jax.models", "The shipped models and their training."),
    ("data", "Data", "actspec_jax.data", "The data shipped inside pinned packages."),
    ("runs", "Runs", "actspec_jax.runs", "``actspec run`` as a library: configs, presets, pipeline."),
    ("shapiq", "shapiq interop", "actspec_jax.interop.shapiq", "Conversion to and from shapiq."),
]


def _directive(obj: object) -> str:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    if callable(obj):
        return "autofunction"
    return "autodata"


def _data_home(name: str, obj: object, default: str) -> str:
    """The module whose source documents ``name`` with a ``#:`` comment (autodoc reads it there)."""
    from sphinx.pycode import ModuleAnalyzer

    for module_name in sorted(m for m in sys.modules if m.split(".")[0] == "actspec_jax"):
        module = sys.modules[module_name]
        if getattr(module, name, None) is not obj:
            continue
        try:
            if ("", name) in ModuleAnalyzer.for_module(module_name).find_attr_docs():
                return module_name
        except Exception:
            continue
    return default


def public_names(module_name: str) -> list[str]:
    """The names a page documents: the module's ``__all__`` less sub-modules and dunders."""
    module = importlib.import_module(module_name)
    names = []
    for name in module.__all__:
        if name.startswith("__") or inspect.ismodule(getattr(module, name)):
            continue
        names.append(name)
    return names


def write_reference(out: Path = DOCS / "reference") -> None:
    """Write one page per entry of :data:`REFERENCE_PAGES` and the reference index."""
    out.mkdir(exist_ok=True)
    home: dict[int, str] = {}  # id(object) -> its documented dotted name
    for stem, title, module_name, intro in REFERENCE_PAGES:
        module = importlib.import_module(module_name)
        lines = [title, "=" * len(title), "", intro, "", f".. module:: {module_name}", ""]
        for name in public_names(module_name):
            obj = getattr(module, name)
            seen = home.get(id(obj)) if not isinstance(obj, (int, float, str, tuple)) else None
            if seen is not None:
                lines += [f".. py:data:: {name}", "   :no-index:", "", f"   Same as :py:obj:`{seen}`.", ""]
                continue
            directive = _directive(obj)
            where = _data_home(name, obj, module_name) if directive == "autodata" else module_name
            home[id(obj)] = f"{where}.{name}"
            lines += [f".. {directive}:: {where}.{name}"]
            if directive == "autodata" and not isinstance(obj, (int, float, str)):
                lines.append("   :no-value:")
            lines.append("")
        (out / f"{stem}.rst").write_text("\n".join(lines))
    toc = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
    toc += [f"   {stem}" for stem, *_ in REFERENCE_PAGES]
    (out / "index.rst").write_text("\n".join(toc) + "\n")


def _generate(app: object) -> None:
    write_reference()


def setup(app: object) -> None:
    app.connect("builder-inited", _generate)  # type: ignore[attr-defined]
