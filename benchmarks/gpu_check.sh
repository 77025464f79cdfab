#!/usr/bin/env bash
# One-shot check of the cuda backend on a machine with an NVIDIA GPU.
#
#   pip install -e ".[test,cuda13]"      # or ".[test,cuda12]", as in the README
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# 1. the gpu-marked tests (the cuda backend's tests on the GPU at realistic
#    shapes, the contract tests, the PTX checks), 2. the CUDA benchmark,
# 3. one summary: agreement with the numpy backend per kernel, GB/s and
# fraction of the copy bandwidth per kernel (the SE, channel-pooling and
# Gather-Excite kernels), naive against optimised squeeze.
# Exits non-zero if a step fails. Takes a few minutes (budget: 8).
set -euo pipefail

OUT="${1:-gpu_check_out}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."

python - <<'PY'
from numba import cuda
if not cuda.is_available():
    raise SystemExit("gpu_check: no usable CUDA GPU here (numba.cuda.is_available() is False); "
                     "install the cuda12/cuda13 extra on a machine with an NVIDIA driver")
print("GPU:", cuda.get_current_device().name)
PY

echo "== 1/3 tests on the GPU"
NUMBA_ENABLE_CUDASIM=0 python -m pytest -q -p no:cacheprovider -m gpu tests/test_kernels_cuda.py \
    -rs 2>&1 | tee "$OUT/tests_gpu.txt"
grep -q "1 passed" "$OUT/tests_gpu.txt" || { echo "gpu_check: the GPU tests did not run"; exit 1; }
python -m pytest -q -p no:cacheprovider tests/test_cuda_ptx.py 2>&1 | tee "$OUT/tests_ptx.txt"

echo "== 2/3 benchmark"
python -m se_numpy.cli bench --backend cuda --out "$OUT" | tee "$OUT/bench.txt"

echo "== 3/3 summary"
python - "$OUT" <<'PY'
import json
import sys

import numpy as np

from se_numpy.kernels import contract
from se_numpy.kernels import cuda as gpu
from se_numpy.kernels import numpy as reference

out = sys.argv[1]
shape = (64, 256, 56, 56)
print(f"agreement with the numpy backend at {shape} float32 (max |cuda - numpy| / max |numpy|)")
for op in contract.CONTRACT:
    if op.file not in contract.GPU_FILES + contract.GPU_FILES_WITH_GEOMETRY:
        continue
    arguments = contract.example_arguments(op.name, shape, np.float32, seed=0)
    got = getattr(gpu, op.name)(*arguments)
    want = getattr(reference, op.name)(*arguments)
    got, want = (got if isinstance(got, tuple) else (got,)), (want if isinstance(want, tuple) else (want,))
    errors = [float(np.max(np.abs(g.astype(np.float64) - w)) / max(float(np.max(np.abs(w))), 1e-30))
              for g, w in zip(got, want)]
    print(f"  {op.name:<24}" + "  ".join(f"{e:.1e}" for e in errors))

result = json.load(open(f"{out}/kernels_cuda.json"))
print(f"\ncopy bandwidth {result['memory']['copy_GBps']:.0f} GB/s "
      f"(datasheet {result['memory']['datasheet_GBps']:.0f} GB/s)")
for entry in result["shapes"]:
    print(f"shape {tuple(entry['shape'])} {entry['dtype']}: GB/s (fraction of copy)")
    rows = {row["kernel"]: row["results"]["cuda"] for row in entry["kernels"]}
    for name, rates in rows.items():
        print(f"  {name:<26}{rates['GBps']:>8.0f}  ({rates['fraction_of_bandwidth']:.2f})")
    naive, tree = rows["squeeze_forward_naive"]["seconds"], rows["squeeze_forward"]["seconds"]
    print(f"  squeeze: optimised tree {naive / tree:.1f}x faster than the naive kernel")
    for name, timing in entry["se_block"]["results"].items():
        print(f"  SE block, {name}: {timing['times_bound']:.2f} x the 7-pass bound")
PY
