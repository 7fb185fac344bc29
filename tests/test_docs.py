"""The documentation: docstring examples run, the API reference builds, every public module
declares its API, equation labels are defined, and no doc cites files outside the repository.

Public modules (`docs/build_api.py`'s `public_modules`) are those under `hjepa_jax` with no
`_`-prefixed part, except `hjepa_jax.experiments` (the command line `hjepa-run`, documented
by `hjepa-run NAME --help`).
"""

import doctest
import importlib
import importlib.util
import inspect
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hjepa_jax"


def load_build_api():
    """docs/build_api.py, what `make docs` runs (it also defines the public modules)."""
    spec = importlib.util.spec_from_file_location("build_api", ROOT / "docs" / "build_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD_API = load_build_api()
MODULES = BUILD_API.public_modules()


def test_public_modules_are_found():
    assert {"hjepa_jax", "hjepa_jax.latent", "hjepa_jax.data.sources", "hjepa_jax.nn"} <= set(
        MODULES
    )
    assert not [m for m in MODULES if m.startswith("hjepa_jax.experiments")]


# ---- (a) docstring examples ----


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    """Every `>>>` example in the module's docstrings runs and prints what it shows."""
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    report = io.StringIO()
    for test in finder.find(module, name, globs=dict(vars(module))):
        runner.run(test, out=report.write)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{name}: {failed} of {attempted} examples failed\n{report.getvalue()}"


# ---- (b) the API reference ----


def test_api_reference_builds(tmp_path):
    """What `make docs` runs: a page per public module, listed in the index, with every name
    of the module's `__all__` (signature and docstring)."""
    out = BUILD_API.build(tmp_path / "api")
    assert (out / "index.html").exists() and (out / "equations.html").exists()
    index = (out / "index.html").read_text()
    missing = []
    for name in MODULES:
        path = name.replace(".", "/") + ".html"
        if f"href='{path}'" not in index:
            missing.append(f"{name}: not in index.html")
        page = out / path
        if not page.exists():
            missing.append(f"{name}: no page")
            continue
        html = page.read_text()
        module = importlib.import_module(name)
        for obj in getattr(module, "__all__", []):
            if not inspect.ismodule(getattr(module, obj)) and f'id="{obj}"' not in html:
                missing.append(f"{name}.{obj}")
    assert not missing, missing
    assert not list(out.glob("hjepa_jax/experiments*")), "experiments are not API"


# ---- (c) __all__ ----


@pytest.mark.parametrize("name", MODULES)
def test_module_declares_all(name):
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} defines no __all__"
    unknown = [n for n in module.__all__ if not hasattr(module, n)]
    assert not unknown, f"{name}.__all__ names what it does not define: {unknown}"


# ---- (d) citations ----

# Files outside this repository, and issue numbers of a tracker the reader cannot see.
CITATION = re.compile(r"DESIGN\.md|PAPER\.md|STYLE\.md|\.\./shared|\bissue\s*#?\s*\d+", re.I)


def documents() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py")) + [ROOT / "README.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    files += sorted(p for p in (ROOT / "tpu_setup").rglob("*") if p.is_file())
    return [p for p in files if "__pycache__" not in p.parts]


def test_docs_cite_nothing_outside_the_repository():
    hits = []
    for path in documents():
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if CITATION.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)


# ---- equation labels ----

LABEL = re.compile(r"(?<![\"'])\bE(\d{1,2})\b(?![\"'])")  # not a quoted key such as "E0"


def test_equation_labels_are_defined():
    """docs/equations.md defines E1-E14, each once, and every label the package or README
    cites is one of them; README links to it."""
    text = (ROOT / "docs" / "equations.md").read_text()
    defined = re.findall(r"^\*\*E(\d+) - ", text, re.M)
    assert defined == [str(i) for i in range(1, 15)]
    cited = {}
    for path in sorted(PACKAGE.rglob("*.py")) + [ROOT / "README.md"]:
        for n in LABEL.findall(path.read_text()):
            cited.setdefault(int(n), path.relative_to(ROOT).as_posix())
    undefined = {f"E{n}": where for n, where in cited.items() if not 1 <= n <= 14}
    assert not undefined, f"cited but not in docs/equations.md: {undefined}"
    assert "(docs/equations.md)" in (ROOT / "README.md").read_text()


def test_equations_name_functions_that_exist():
    import hjepa_jax as hj

    text = (ROOT / "docs" / "equations.md").read_text()
    names = sorted(set(re.findall(r"`hj\.([\w.]+)", text)))
    assert names
    missing = []
    for dotted in names:
        obj = hj
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append(f"hj.{dotted}")
    assert not missing, missing


def test_readme_code_runs_as_written(tmp_path):
    """The README's Python blocks (the API tour, then the training block), in order, in a
    fresh process and an empty folder: they run as a user pastes them."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2
    script = "\n".join(blocks) + "\nassert res.summary['final_loss'] < 1e-6, res.summary\n"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "ckpt").is_dir()  # the training block's checkpoints
