"""Are the pipeline's data bit-identical on another CPU? A check on one machine.

Another machine differs from this one mostly in the SIMD code paths its libraries pick
(AVX-512 here, AVX2 or SSE elsewhere), which reorder float sums. This script runs
``anchorudf preprocess`` (garments, render, sample, anchors) of a small default set twice
in fresh processes: once natively, once with every library we use held to older
instruction sets through its documented switch:

- torch (anny's body model, k-means helpers): ``ATEN_CPU_CAPABILITY=default`` (no AVX2 /
  AVX-512 kernels), ``ONEDNN_MAX_CPU_ISA=SSE41``;
- numpy: ``NPY_DISABLE_CPU_FEATURES`` (its AVX2 / AVX-512 dispatch targets off);
- OpenBLAS (numpy, scipy): ``OPENBLAS_CORETYPE=Nehalem`` (SSE4 kernels);
- MKL, where present: ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``;
- Mesa's llvmpipe (OSMesa/EGL rendering): ``LP_NATIVE_VECTOR_WIDTH=128`` (SSE width).

It then compares every output file's sha256, stage by stage, and for differing arrays
the largest difference. Usage::

    python benchmarks/repro_check.py [--count 12] [--work /tmp/repro_check]

Exit status 1 when any file differs. This is a proxy for a second machine, not a
replacement: other library versions, compilers or GPUs can still differ (README,
"Reproducibility").
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OLD_ISA = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "OPENBLAS_CORETYPE": "Nehalem",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "LP_NATIVE_VECTOR_WIDTH": "128",
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(out: Path, env_extra: dict[str, str], count: int) -> float:
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ, **env_extra)
    cmd = [sys.executable, "-m", "anchorudf", "preprocess", "--out", str(out), "--params", str(ROOT / "params.yaml"),
           "-S", f"garments.count={count}", "-S", "garments.shifted_count=2",
           "-S", "sample.points_per_garment=20000", "-S", "anchors.surface_samples=5000"]
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def max_diff(a: Path, b: Path) -> str:
    import numpy as np

    if a.suffix == ".npy":
        x, y = np.load(a), np.load(b)
        if x.shape == y.shape and x.dtype.kind == "f":
            return f"max |diff| {np.abs(x.astype(np.float64) - y).max():.3g}"
    if a.suffix == ".png":
        from PIL import Image

        x, y = np.asarray(Image.open(a), np.int32), np.asarray(Image.open(b), np.int32)
        if x.shape == y.shape:
            return f"{int((x != y).any(axis=-1).sum() if x.ndim == 3 else (x != y).sum())} pixels differ"
    return "bytes differ"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=12, help="default-set garments (plus 2 shifted)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/repro_check"))
    a = ap.parse_args()
    secs = {name: run(a.work / name, env, a.count) for name, env in (("native", {}), ("old_isa", OLD_ISA))}
    fa, fb = files(a.work / "native"), files(a.work / "old_isa")
    rows, bad = {}, []
    for name in sorted(set(fa) | set(fb)):
        stage = name.split("/")[0] if not name.startswith("cache/") else "/".join(name.split("/")[:2])
        same = name in fa and name in fb and _sha(fa[name]) == _sha(fb[name])
        r = rows.setdefault(stage, [0, 0])
        r[0 if same else 1] += 1
        if not same:
            bad.append(f"  {name}: " + (max_diff(fa[name], fb[name]) if name in fa and name in fb else "only in one run"))
    print(f"native {secs['native']:.0f} s, old ISA {secs['old_isa']:.0f} s; {a.count} + 2 garments")
    print("| outputs | identical files | differing files |\n|---|---|---|")
    for stage, (same, diff) in rows.items():
        print(f"| {stage} | {same} | {diff} |")
    print("\n".join(bad[:40]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
