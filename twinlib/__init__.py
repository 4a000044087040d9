"""twinlib — the library behind the twin course notebooks.

Each numbered notebook in ``notebooks/`` tells the story of one stage; the logic it runs lives
here so that it is tested, reused between stages and kept in one place.
"""

__version__ = "0.1.0"
