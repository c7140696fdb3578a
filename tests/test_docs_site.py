"""The documentation site's API reference covers every public name, each with its own words.

The site itself is built by ``.ci/run`` (``sphinx-build -W`` and the doctest builder); this
checks, without Sphinx, what the generated reference pages (``docs/conf.py``) will show.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"

#: Public callables that keep a ``**`` catch-all, and why.
CATCH_ALL = {
    "actspec_jax.transforms.moebius_to_fourier_sparse": "metadata fields of Spectrum.build",
    "actspec_jax.runs.config_from_preset": "RunConfig fields, checked by name by dataclasses.replace",
}


def _conf():
    spec = importlib.util.spec_from_file_location("actspec_docs_conf", DOCS / "conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entries():
    conf = _conf()
    for _, _, module_name, _ in conf.REFERENCE_PAGES:
        module = importlib.import_module(module_name)
        for name in conf.public_names(module_name):
            yield module_name, name, getattr(module, name)


def _has_doc_comment(name: str, obj: object) -> bool:
    """A ``#:`` comment right above ``name = …`` in a package module that holds ``obj``."""
    pattern = re.compile(rf"^#:.*\n(?:#:.*\n)*{re.escape(name)}\s*[:=]", re.M)
    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] != "actspec_jax" or getattr(module, name, None) is not obj:
            continue
        source = Path(inspect.getsourcefile(module)).read_text()
        if pattern.search(source):
            return True
    return False


def test_every_public_name_has_its_own_documentation():
    undocumented = []
    for module_name, name, obj in _entries():
        if inspect.isclass(obj) or callable(obj):
            own = obj.__doc__ and obj.__doc__ is not type(obj).__doc__
            if not own or not obj.__doc__.strip():
                undocumented.append(f"{module_name}.{name}")
        elif not _has_doc_comment(name, obj):
            undocumented.append(f"{module_name}.{name} (a constant needs a '#:' comment)")
    assert not undocumented, undocumented


def test_public_callables_list_their_options():
    hidden = []
    for module_name, name, obj in _entries():
        if not callable(obj) or (inspect.isclass(obj) and issubclass(obj, BaseException)):
            continue
        try:
            parameters = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError):
            continue
        if any(p.kind is p.VAR_KEYWORD for p in parameters) and f"{module_name}.{name}" not in CATCH_ALL:
            hidden.append(f"{module_name}.{name}")
    assert not hidden, f"public callables with a bare **kwargs: {hidden}"


@pytest.mark.parametrize(
    "package", ["problems", "solvers", "transforms", "concepts", "layers", "models", "data"]
)
def test_every_public_face_has_a_reference_page(package):
    faces = {module_name for _, _, module_name, _ in _conf().REFERENCE_PAGES}
    assert f"actspec_jax.{package}" in faces


def test_solver_options_are_keyword_only():
    """Options come by name, as in optax and equinox: ``CompressiveSolver(max_evaluations=B)``."""
    import actspec_jax as asj

    for solver in (asj.ExactSolver, asj.GoldreichLevin, asj.CompressiveSolver):
        kinds = {p.kind for p in inspect.signature(solver).parameters.values()}
        assert kinds == {inspect.Parameter.KEYWORD_ONLY}, solver.__name__
    first, *rest = inspect.signature(asj.ResidualPasses).parameters.values()
    assert first.name == "solver" and {p.kind for p in rest} == {inspect.Parameter.KEYWORD_ONLY}
    with pytest.raises(TypeError):
        asj.CompressiveSolver(4)
