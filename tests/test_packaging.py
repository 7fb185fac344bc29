"""The wheel as a user installs it, and what `import hjepa_jax` costs.

The wheel is built offline from a copy of the working tree's sources (`pip wheel
--no-build-isolation`, with the setuptools of the dev extra), so a stale `build/` folder of the
checkout cannot leak into it. A few seconds.
"""

import configparser
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIST_INFO = "hjepa_jax-0.1.0.dist-info"
# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the standard text.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
HEAVY = ("orbax", "tensorflow_datasets", "tensorstore")
# What the wheel is built from: the build's inputs, and the other top-level folders with
# Python files (which must stay out of it). Not the environment, build or run outputs.
COPIED = ("pyproject.toml", "LICENSE", "README.md", "docs", "hjepa_jax", "benchmarks", "tests")
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info", "api")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in COPIED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=IGNORED)
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    cmd += ["--no-index", "--disable-pip-version-check", "-q", "-w", str(dist), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        "the wheel did not build (the dev extra brings setuptools>=77: "
        f"pip install -e '.[dev]'):\n{done.stdout}\n{done.stderr}"
    )
    (whl,) = dist.glob("hjepa_jax-0.1.0-*.whl")
    return whl


@pytest.fixture(scope="module")
def names(wheel) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


def read(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        return z.read(name).decode()


def test_wheel_holds_only_the_package(wheel, names):
    assert {n.split("/")[0] for n in names} == {"hjepa_jax", DIST_INFO}
    assert not [n for n in names if n.split("/")[0] in ("experiments", "benchmarks", "tests")]
    tests = [n for n in names if re.search(r"(^|/)(tests?/|test_[^/]*\.py$|conftest\.py$)", n)]
    assert not tests, tests
    assert read(wheel, f"{DIST_INFO}/top_level.txt").split() == ["hjepa_jax"]
    # Every module of the source tree is in it (no subpackage left behind), and nothing else.
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "hjepa_jax").rglob("*.py")}
    source = {n for n in source if "__pycache__" not in n}
    assert {n for n in names if n.endswith(".py")} == source
    assert {n for n in names if n.startswith("hjepa_jax/") and not n.endswith(".py")} == {
        "hjepa_jax/py.typed"
    }


def test_wheel_ships_license_and_typing_marker(wheel, names):
    assert "hjepa_jax/py.typed" in names
    assert f"{DIST_INFO}/licenses/LICENSE" in names
    assert read(wheel, f"{DIST_INFO}/licenses/LICENSE") == (ROOT / "LICENSE").read_text()
    meta = read(wheel, f"{DIST_INFO}/METADATA")
    headers = meta.split("\n\n", 1)[0].splitlines()
    assert "License-Expression: Apache-2.0" in headers
    assert "License-File: LICENSE" in headers


def test_license_is_the_full_apache_2_text():
    text = (ROOT / "LICENSE").read_text()
    assert hashlib.sha256(text.encode()).hexdigest() == APACHE_2_SHA256
    assert "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_console_script_hjepa_run(wheel, names):
    entry_points = configparser.ConfigParser()
    entry_points.read_string(read(wheel, f"{DIST_INFO}/entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == {"hjepa-run": "hjepa_jax.experiments.run:main"}
    assert "hjepa_jax/experiments/run.py" in names
    assert re.search(r"^def main\(", read(wheel, "hjepa_jax/experiments/run.py"), re.M)


def test_installed_wheel_imports_from_its_own_copy(wheel, tmp_path):
    """Installed with pip (no dependencies: the venv has them), the wheel's copy imports,
    with its py.typed, and the console script's target resolves."""
    target = tmp_path / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
    cmd += ["--disable-pip-version-check", "--target", str(target), str(wheel)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (target / "bin" / "hjepa-run").exists()
    code = (
        "import pathlib, hjepa_jax, hjepa_jax.experiments.run as run; "
        "p = pathlib.Path(hjepa_jax.__file__).parent; "
        "print(p); assert (p / 'py.typed').exists() and callable(run.main)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.split()[-1]) == target / "hjepa_jax"


# ---- the package description ----

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)")  # markdown links and images: the target
HTML_REF = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)""", re.I)


def relative_targets(markdown: str) -> list[str]:
    targets = LINK.findall(markdown) + HTML_REF.findall(markdown)
    return [t for t in targets if not re.match(r"(https?|mailto):", t)]


def test_package_description_has_no_repository_paths(wheel):
    """A package index renders the description without the repository's files: an image or
    link with a relative path (README.md's `docs/fig4_ellipse.png`) would be broken there."""
    meta = read(wheel, f"{DIST_INFO}/METADATA")
    assert "Description-Content-Type: text/markdown" in meta.split("\n\n", 1)[0]
    description = meta.split("\n\n", 1)[1]
    assert description.startswith("# hjepa_jax")
    assert relative_targets(description) == []
    # The check is not vacuous: the repository's README does use relative images.
    assert "docs/fig4_ellipse.png" in relative_targets((ROOT / "README.md").read_text())


def test_package_description_code_matches_the_readme():
    """The description's code examples are README.md's, so the two cannot drift apart."""
    fence = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)
    readme = (ROOT / "README.md").read_text()
    blocks = fence.findall((ROOT / "docs" / "package_readme.md").read_text())
    assert blocks
    for block in blocks:
        assert block in readme, f"not in README.md:\n{block}"


# ---- import cost ----

LAZY_CHECK = """
import sys
import hjepa_jax as hj
import numpy as np

heavy = lambda: sorted({m.split(".")[0] for m in sys.modules if m.startswith(HEAVY)})
assert heavy() == [], ("import hjepa_jax", heavy())
# The modules stay attributes of the package, and what needs no tfds or orbax works without.
assert all(map(callable, (hj.checkpoint.subdir, hj.train.train, hj.data.load, hj.data.read)))
next(hj.data.Batches({"x": np.arange(8)}, 4, seed=0, process_index=0, process_count=1))
assert heavy() == [], ("attributes", heavy())
print("ok")
"""


def test_import_leaves_orbax_and_tfds_unloaded():
    code = f"HEAVY = {HEAVY!r}\n{LAZY_CHECK}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split()[-1] == "ok", done.stderr[-3000:]


FIRST_USE = """
import sys
import tensorflow_datasets as tfds
from hjepa_jax.data import moving_shapes  # any one builder module registers all three

assert {"hjepa_digits", "hjepa_moving_shapes", "hjepa_two_rooms"} <= set(
    tfds.list_builders(with_community_datasets=False)
)
import hjepa_jax as hj

assert tfds.builder_cls("hjepa_two_rooms") is hj.data.HjepaTwoRooms
assert sorted(hj.data.BUILDERS) == [
    "hjepa_digits", "hjepa_moving_shapes", "hjepa_shapes_images", "hjepa_two_rooms"
]
assert hj.data.BUILDERS is hj.data.sources.BUILDERS
assert "orbax.checkpoint" not in sys.modules
hj.checkpoint.Checkpointer(sys.argv[1]).close()
assert "orbax.checkpoint" in sys.modules
print("ok")
"""


def test_first_use_imports_and_registers(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", FIRST_USE, str(tmp_path / "ckpt")], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.split()[-1] == "ok", done.stderr[-3000:]
