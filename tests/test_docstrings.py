"""Every public function, class and method of the package has a numpydoc docstring whose
Parameters match its signature and which has a Returns (or Yields) section when it returns
(or yields) something: checked with numpydoc's own validator."""

import importlib
import inspect
import pkgutil

import pytest

import dask_biglearn

numpydoc_validate = pytest.importorskip("numpydoc.validate")

#: numpydoc's checks that we hold every public object to: a docstring, documented and known
#: parameters, a Returns / Yields section where there is something to return.
CHECKS = {"GL08", "PR01", "PR02", "RT01", "YD01", "SS01"}


def _public_modules():
    for info in pkgutil.walk_packages(dask_biglearn.__path__, "dask_biglearn."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        yield importlib.import_module(info.name)


def _public_objects():
    """Import paths of the public functions, classes and methods defined in the package."""
    seen = set()
    for module in _public_modules():
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            path = f"{module.__name__}.{name}"
            if path in seen:
                continue
            seen.add(path)
            yield path
            if inspect.isclass(obj):
                yield from _public_members(obj, path)


def _public_members(cls, path):
    """The public methods and properties of ``cls``, its own and those it inherits from the
    package's classes (a method of a private base class is public on its subclasses)."""
    for attr in dir(cls):
        if attr.startswith("_"):
            continue
        owner = next((c for c in cls.__mro__ if attr in vars(c)), None)
        if owner is None or not owner.__module__.startswith("dask_biglearn"):
            continue
        member = vars(owner)[attr]
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if inspect.isfunction(member) or isinstance(member, property):
            yield f"{path}.{attr}"


PUBLIC = sorted(set(_public_objects()))


def test_the_walker_sees_the_public_api():
    assert "dask_biglearn.estimator.BigLearnGaussianMixture" in PUBLIC
    assert "dask_biglearn.estimator.BigLearnGaussianMixture.fit" in PUBLIC
    assert "dask_biglearn.fit.loop.run_fits" in PUBLIC
    assert len(PUBLIC) > 150


@pytest.mark.parametrize("path", PUBLIC)
def test_public_docstring_is_numpydoc(path):
    result = numpydoc_validate.validate(path)
    errors = [f"{code}: {message}" for code, message in result["errors"] if code in CHECKS]
    if result["type"] == "property":
        errors = [e for e in errors if e.startswith(("GL08", "SS01"))]
    assert not errors, f"{path}:\n" + "\n".join(errors)
