"""The import boundaries of the package (ARCHITECTURE.md), read from the source.

Worker-side kernels import only NumPy, numba, the standard library and each other; the type
table (``covariances``) only NumPy and the standard library; the driver loops and algebra import
neither Dask nor distributed, directly or through the package's own modules; engines never
import the estimators or the fit loops; the file layer (io) imports none of the estimators, the
fit program or the engines; nothing but the command line imports the package face
(``dask_biglearn/__init__.py``).
"""

import ast
import sys
from pathlib import Path

import pytest

import dask_biglearn

PACKAGE = Path(dask_biglearn.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (module level and inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            # ``from . import x`` may name a submodule.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _internal_closure(name: str) -> set[str]:
    """Package modules reachable from ``name`` through imports (the face included: a module
    that imports it reaches everything)."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(m for m in GRAPH.get(current, ()) if m in MODULES)
    return seen


def _top(name):
    return name.split(".")[0]


def _is_stdlib(name):
    return _top(name) in sys.stdlib_module_names or _top(name) == "__future__"


def test_the_walker_sees_the_modules():
    assert "dask_biglearn.kernels.passes" in MODULES
    assert "dask_biglearn.engines.dask" in MODULES
    assert "dask" in {_top(m) for m in GRAPH["dask_biglearn.engines.dask"]}


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("dask_biglearn.kernels")))
def test_kernels_import_only_numpy_numba_and_each_other(name):
    for imported in GRAPH[name]:
        assert (_is_stdlib(imported) or _top(imported) in ("numpy", "numba")
                or imported.startswith("dask_biglearn.kernels")), f"{name} imports {imported}"


DRIVER_SIDE = sorted(m for m in MODULES
                     if m.startswith(("dask_biglearn.fit", "dask_biglearn.kernels"))) + [
    "dask_biglearn.covariances", "dask_biglearn.algebra", "dask_biglearn.model",
    "dask_biglearn.projection", "dask_biglearn.initialization"]


def test_the_type_table_imports_only_numpy_and_the_standard_library():
    for imported in GRAPH["dask_biglearn.covariances"]:
        assert _is_stdlib(imported) or _top(imported) == "numpy", imported


@pytest.mark.parametrize("name", DRIVER_SIDE)
def test_fit_loops_and_algebra_never_reach_dask(name):
    for module in _internal_closure(name):
        bad = {m for m in GRAPH[module] if _top(m) in ("dask", "distributed")}
        assert not bad, f"{name} reaches {sorted(bad)} through {module}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("dask_biglearn.engines")))
def test_engines_never_import_the_estimators_or_the_fit_loops(name):
    for module in _internal_closure(name):
        assert not module.startswith(("dask_biglearn.estimator", "dask_biglearn.fit")), (
            f"{name} reaches {module}")


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("dask_biglearn.io")))
def test_the_file_layer_sits_below_the_estimators_the_fit_program_and_the_engines(name):
    for module in _internal_closure(name):
        assert not module.startswith(("dask_biglearn.estimator", "dask_biglearn.fit",
                                      "dask_biglearn.engines")), f"{name} reaches {module}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m != "dask_biglearn"
                                        and not m.startswith("dask_biglearn.cli")))
def test_only_the_command_line_imports_the_package_face(name):
    assert "dask_biglearn" not in GRAPH[name], f"{name} imports the package face"


def test_the_face_check_sees_a_face_import():
    assert "dask_biglearn" in GRAPH["dask_biglearn.cli.commands"]


def test_importing_a_kernel_imports_no_estimator():
    """A worker unpickling a kernel imports the package first: the face must not pull in the
    estimators (scikit-learn, and whatever it imports, in every worker's memory)."""
    import subprocess

    probe = ("import sys, dask_biglearn.kernels.passes, dask_biglearn.kernels.scoring, "
             "dask_biglearn.engines.actors; "
             "print(sorted(m for m in sys.modules if m.startswith(('sklearn', "
             "'dask_biglearn.estimator', 'pandas'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"
    import dask_biglearn

    assert set(dask_biglearn.__all__) <= set(dir(dask_biglearn))
    assert dask_biglearn.load.__name__ == "load_model"
