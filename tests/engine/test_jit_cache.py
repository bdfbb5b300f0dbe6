"""numba's machine code kept on disk (engine.jit_cache): what a new worker process loads instead
of compiling UMAP again."""

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numba

from engine import jit_cache

ROOT = Path(__file__).resolve().parents[2]


def test_functions_decorated_after_it_are_cached_in_our_folder(tmp_path, monkeypatch):
    source = tmp_path / "jitted_here.py"
    source.write_text(
        textwrap.dedent(
            """
            import numba

            @numba.njit
            def twice(x):
                return 2 * x
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    before = numba.config.CACHE_DIR
    try:
        jit_cache.keep_compiled_code(tmp_path / "cache")
        jit_cache.keep_compiled_code(tmp_path / "cache")  # idempotent: one wrapper
        assert numba.njit.__wrapped__.__module__.startswith("numba")
        module = importlib.import_module("jitted_here")
        assert module.twice(21) == 42
    finally:
        numba.config.CACHE_DIR = before
    written = {path.suffix for path in (tmp_path / "cache").rglob("*") if path.is_file()}
    assert {".nbi", ".nbc"} <= written  # the index and the machine code


def test_a_new_process_maps_heads_from_the_warmed_cache_without_compiling(tmp_path):
    """prepare_models warmed the cache (make test runs it first): a fresh process's first
    UMAP fit loads machine code, so numba compiles nothing."""
    from django.conf import settings

    folder = settings.TOKENLENS_NUMBA_CACHE
    assert jit_cache.warm_head_maps(folder) is False  # already warm: nothing to do
    script = textwrap.dedent(
        f"""
        import numba.core.dispatcher as dispatcher
        from engine import jit_cache

        seen = set()
        original = dispatcher.Dispatcher.compile
        def noting(self, sig):
            seen.add(self)
            return original(self, sig)
        dispatcher.Dispatcher.compile = noting
        jit_cache.keep_compiled_code(__import__("pathlib").Path({str(folder)!r}))
        import numpy as np
        from engine.heads import FEATURE_NAMES, HeadFeatures
        import umap
        matrix = np.random.default_rng(1).standard_normal((270, len(FEATURE_NAMES)))
        umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=0, n_jobs=1).fit_transform(matrix)
        hits = sum(sum(d._cache_hits.values()) for d in seen)
        misses = sum(sum(d._cache_misses.values()) for d in seen)
        print(hits, misses)
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    hits, misses = map(int, done.stdout.split()[-2:])
    assert hits >= 20 and misses <= hits // 10, done.stdout  # loaded, hardly any compiled
