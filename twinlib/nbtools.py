"""Notebook hygiene: strip outputs, check the one-parameters-cell rule, build notebooks from cells.

``python -m twinlib.nbtools strip notebooks/*.ipynb`` clears outputs, execution counts and
kernel/widget metadata so that only the source goes into git.
``python -m twinlib.nbtools check notebooks/*.ipynb`` lists what breaks the rules.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat

KEEP_NB_METADATA = {"kernelspec", "language_info", "colab", "accelerator"}


def new_notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """Cells given as ``("md", text)``, ``("code", src)`` or ``("params", src)`` (the tagged one)."""
    nb = nbformat.v4.new_notebook()
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(src))
        elif kind == "code":
            nb.cells.append(nbformat.v4.new_code_cell(src))
        elif kind == "params":
            nb.cells.append(nbformat.v4.new_code_cell(src, metadata={"tags": ["parameters"]}))
        else:
            raise ValueError(f"unknown cell kind {kind!r}")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return strip(nb)


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs, execution counts, cell ids' noise and run-specific metadata."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        tags = cell.metadata.get("tags")
        cell.metadata = {"tags": tags} if tags else {}
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_NB_METADATA}
    return nb


def problems(path) -> list[str]:
    """Rule violations of one notebook: outputs, counts, parameters cells, syntax errors."""
    nb = nbformat.read(str(path), as_version=4)
    out = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    n_params = sum("parameters" in c.metadata.get("tags", []) for c in code)
    if n_params != 1:
        out.append(f"{path}: {n_params} cells tagged 'parameters' (exactly one is required)")
    for i, c in enumerate(code):
        if c.get("outputs") or c.get("execution_count"):
            out.append(f"{path}: code cell {i} has committed outputs (run `make strip-notebooks`)")
        src = "\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            ast.parse(src)
        except SyntaxError as e:
            out.append(f"{path}: code cell {i} does not parse: {e.msg} (line {e.lineno})")
    if "widgets" in nb.metadata:
        out.append(f"{path}: widget state committed in metadata")
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("strip", "check"):
        print(__doc__)
        return 2
    cmd, paths = argv[0], [Path(p) for p in argv[1:]]
    if cmd == "strip":
        for p in paths:
            nb = nbformat.read(str(p), as_version=4)
            nbformat.write(strip(nb), str(p))
        return 0
    bad = [msg for p in paths for msg in problems(p)]
    print("\n".join(bad) or f"{len(paths)} notebooks OK")
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
