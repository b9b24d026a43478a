"""Seconds of the one-time anny model build: anny's blend-shape reader vs anchorudf's.

The garments stage's first run builds the anny body model into ``garments.anny_cache``;
the other worker processes wait for it. anny reads its 1136 ``*.target.gz`` blend shapes
a line at a time (a ``torch.as_tensor`` per line, 6.9 M lines); anchorudf swaps in
:func:`anchorudf.data.anny.body.load_blend_shape_fast` (one numpy parse per file). Each
build runs in a fresh process into an empty temporary cache, same run, and the two
compact model files are compared tensor by tensor (their bytes differ from build to build
even with anny's own reader: the file's header order is not fixed).

    python benchmarks/bench_anny_build.py            # about 1.5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path


def build(cache_dir: str, fast: bool) -> float:
    """Seconds to build anny into the empty ``cache_dir`` (with anny's reader unless ``fast``)."""
    from anchorudf.data.anny import body

    if not fast:
        body._use_fast_blend_shape_loader = lambda: None  # anny's own reader
    t = time.perf_counter()
    body.load_anny(Path(cache_dir))
    return time.perf_counter() - t


def same_tensors(a: Path, b: Path) -> list[str]:
    """Names of the tensors that differ between two compact model files (empty: same)."""
    import torch
    from safetensors.torch import load_file

    (fa,), (fb,) = a.glob("v*/build_compact_model_data_*.safetensors"), b.glob("v*/build_compact_model_data_*.safetensors")
    ta, tb = load_file(str(fa)), load_file(str(fb))
    names = sorted(set(ta) | set(tb))
    return [n for n in names if n not in ta or n not in tb or ta[n].dtype != tb[n].dtype
            or ta[n].shape != tb[n].shape or not torch.equal(ta[n], tb[n])]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {name: Path(tmp) / name for name in ("anny", "anchorudf")}
        times = {}
        for name, folder in dirs.items():
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as ex:
                times[name] = ex.submit(build, str(folder), name == "anchorudf").result()
        differ = same_tensors(dirs["anny"], dirs["anchorudf"])
    print("reader     | build s")
    for name, s in times.items():
        print(f"{name:10s} | {s:7.1f}")
    print(f"anchorudf's reader: {times['anny'] / times['anchorudf']:.1f}x faster build; "
          f"tensors {'identical' if not differ else 'DIFFER: ' + ', '.join(differ)}")


if __name__ == "__main__":
    main()
