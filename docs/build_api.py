"""Build the API reference of hjepa_jax from its docstrings with pdoc (`make docs`).

    python docs/build_api.py [OUT]        # default OUT: docs/api; open OUT/index.html

Every public module of `hjepa_jax` gets a page listing its public classes, functions and
constants (those in its `__all__`) with signatures and docstrings (Google style: Args,
Returns, Raises). `hjepa_jax.experiments` is left out: it is the command line `hjepa-run`
(`hjepa-run NAME --help`), not an API. `docs/equations.md`, which defines the equation labels
E1-E14 that docstrings cite, is rendered beside them as `equations.html`. Nothing is
downloaded: no MathJax, no fonts from a CDN.
"""

from __future__ import annotations

import html
import pkgutil
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PACKAGE = DOCS.parent / "hjepa_jax"
EXCLUDED = ("hjepa_jax.experiments",)


def public_modules() -> list[str]:
    """Every public module of hjepa_jax, found on disk (nothing imported), packages first.

    Public: no `_`-prefixed part, and not in `EXCLUDED`. pdoc alone would skip the modules
    of a package whose `__all__` re-exports their names (`hjepa_jax.losses.contrastive`);
    they get their own page here, beside the package's.
    """
    names = ["hjepa_jax"]

    def walk(path: Path, prefix: str) -> None:
        for info in pkgutil.iter_modules([str(path)]):
            name = f"{prefix}.{info.name}"
            if info.name.startswith("_") or name.startswith(EXCLUDED):
                continue
            names.append(name)
            if info.ispkg:
                walk(path / info.name, name)

    walk(PACKAGE, "hjepa_jax")
    return names


def build(out: str | Path = DOCS / "api") -> Path:
    """Write the HTML reference into `out` (created if missing); returns `out`."""
    import pdoc.render_helpers

    import hjepa_jax

    out = Path(out)
    with warnings.catch_warnings():
        # Annotations of NamedTuple fields and of tfds's BuilderConfig fields are strings pdoc
        # cannot resolve in their class's namespace; it prints them as written, which is fine.
        warnings.filterwarnings("ignore", message="Error parsing type annotation")
        _render(out, hjepa_jax.__version__)
    body = pdoc.render_helpers.to_html((DOCS / "equations.md").read_text())
    (out / "equations.html").write_text(
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>hjepa_jax: equation labels E1-E14</title></head>\n"
        f"<body><p><a href='hjepa_jax.html'>API reference</a></p>\n{body}</body></html>\n"
    )
    return out


def _render(out: Path, version: str) -> None:
    import pdoc.doc
    import pdoc.extract
    import pdoc.render

    pdoc.render.configure(
        docformat="google",
        footer_text=f"hjepa_jax {version}",
        math=False,
        mermaid=False,
        search=True,
        show_source=True,
    )
    # pdoc.pdoc(), on an explicit list of modules.
    modules = {}
    for name in public_modules():
        with pdoc.extract.mock_some_common_side_effects():
            modules[name] = pdoc.doc.Module.from_name(name)
    for module in modules.values():
        page = out / f"{module.fullname.replace('.', '/')}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(pdoc.render.html_module(module, modules))
    (out / "search.js").write_text(pdoc.render.search_index(modules))
    # The index lists every page (pdoc's would redirect to hjepa_jax.html, whose list of
    # submodules follows `__all__` and so leaves out e.g. hjepa_jax.losses.contrastive).
    rows = "".join(
        f"<li><a href='{m.fullname.replace('.', '/')}.html'><code>{m.fullname}</code></a>"
        f" - {html.escape(m.docstring.strip().splitlines()[0] if m.docstring else '')}</li>\n"
        for m in modules.values()
    )
    (out / "index.html").write_text(
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>hjepa_jax {version} API reference</title></head>\n<body>"
        f"<h1>hjepa_jax {version}: API reference</h1>\n"
        "<p>Generated from the docstrings. Docstrings cite the paper's equations as E1-E14: "
        "<a href='equations.html'>equation labels</a>.</p>\n"
        f"<ul>\n{rows}</ul></body></html>\n"
    )


if __name__ == "__main__":
    print(build(*sys.argv[1:2]) / "index.html")
