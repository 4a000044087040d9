"""Give every notebook the same opening: an Open-in-Colab badge under the title and the Colab
install cell before the set-up call. Idempotent; run after editing a notebook's first cells."""
from pathlib import Path

import nbformat

from twinlib.nbtools import strip

REPO = "twin-course/twin"
ROOT = Path(__file__).resolve().parent.parent
COLAB_CELL = '''import sys, subprocess
if "google.colab" in sys.modules:  # on Colab only: install the course library
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "twinlib[notebooks] @ git+https://github.com/%s"], check=True)
''' % REPO

for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
    nb = nbformat.read(str(path), as_version=4)
    badge = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             f"(https://colab.research.google.com/github/{REPO}/blob/main/notebooks/{path.name})")
    first = nb.cells[0]
    if "colab-badge.svg" not in first.source:
        title, _, rest = first.source.partition("\n")
        first.source = f"{title}\n\n{badge}\n{rest}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup_cell = next((c for c in code if "from twinlib.notebook import setup" in c.source), None)
    if setup_cell is not None and "google.colab" not in setup_cell.source:
        setup_cell.source = COLAB_CELL + "\n" + setup_cell.source
    nbformat.write(strip(nb), str(path))
