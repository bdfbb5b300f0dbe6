"""numba's compiled code kept on disk, so a new worker process does not compile UMAP again.

UMAP (head clustering) is written in numba, and numba compiles each function the first time
it is called in a process: ~10 s on this machine before the first map, against ~0.3 s for
the next one. numba can keep what it compiles on disk, but only for functions declared with
`cache=True`, and umap-learn declares almost none (1 of its 124). `keep_compiled_code` makes
`cache=True` the default of `numba.njit` / `numba.jit` for every module imported after it, and
points numba's cache at a folder of ours; `warm_head_maps` compiles UMAP's path once (at
`manage.py prepare_models`) so every later process loads the machine code instead.

A function numba cannot cache (one closing over another compiled function, say) is compiled
as before, with a NumbaWarning: caching is only ever a speed-up.
"""

from __future__ import annotations

import functools
import json
import warnings
from importlib import metadata
from pathlib import Path

WARMED_STAMP = "warmed.json"


def keep_compiled_code(folder: Path) -> None:
    """From now on numba keeps its machine code under `folder` (idempotent). Call it before
    umap is first imported in the process: functions decorated earlier stay uncached."""
    import numba

    folder.mkdir(parents=True, exist_ok=True)
    numba.config.CACHE_DIR = str(folder)
    for name in ("njit", "jit"):
        decorator = getattr(numba, name)
        if not getattr(decorator, "caches_by_default", False):
            setattr(numba, name, _caching(decorator))


def _caching(decorator):
    @functools.wraps(decorator)
    def caching(*args, **kwargs):
        kwargs.setdefault("cache", True)
        return decorator(*args, **kwargs)

    caching.caches_by_default = True
    return caching


def _versions() -> dict:
    """What the compiled code depends on (read without importing them: umap takes ~2 s)."""
    return {name: metadata.version(name) for name in ("numba", "umap-learn", "pynndescent")}


def warm_head_maps(folder: Path) -> bool:
    """Compile UMAP's path for a head map into `folder` once per library version; False when
    it was already there."""
    stamp = folder / WARMED_STAMP
    keep_compiled_code(folder)
    versions = _versions()
    if stamp.exists() and json.loads(stamp.read_text()) == versions:
        return False
    import numpy as np
    import umap

    from engine.heads import FEATURE_NAMES, UMAP_MIN_DIST, UMAP_NEIGHBORS

    # A model's heads are a few dozen to a few hundred float64 rows, as cluster_heads has them.
    matrix = np.random.default_rng(0).standard_normal((72, len(FEATURE_NAMES)))
    reducer = umap.UMAP(
        n_neighbors=UMAP_NEIGHBORS, min_dist=UMAP_MIN_DIST, random_state=0, n_jobs=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the functions numba could not cache say so
        reducer.fit_transform(matrix)
    stamp.write_text(json.dumps(versions))
    return True
