"""Print the table: model, parameters, float32 and float64 logit error against timm, both ways.

Needs torch and timm beside se_numpy (e.g. a venv with both, and se_numpy on
PYTHONPATH or installed with ``pip install -e``):

    PYTHONPATH=. /path/to/torch-venv/bin/python scripts/compare_timm.py [NAME ...]

Columns: parameters (se_numpy's count, equal to timm's), the relative logit
error max|ours − timm| / max|timm| with timm's weights loaded into se_numpy
(float32, float64), and with se_numpy's state_dict() loaded into timm (float64).
Input: 2 random images at 100x100; BatchNorm statistics randomised.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from timm_reference import se_numpy_to_timm, timm_to_se_numpy  # noqa: E402

from se_numpy.models.zoo import TIMM_NAMES  # noqa: E402


def main(names):
    print(f"{'model':<28} {'params':>12} {'f32 timm->sn':>13} {'f64 timm->sn':>13} "
          f"{'f64 sn->timm':>13} {'seconds':>8}")
    for name in names or TIMM_NAMES:
        start = time.perf_counter()
        error32, parameters = timm_to_se_numpy(name, np.float32)
        error64, _ = timm_to_se_numpy(name, np.float64)
        back64 = se_numpy_to_timm(name, np.float64)
        print(f"{name:<28} {parameters:>12,} {error32:>13.2e} {error64:>13.2e} {back64:>13.2e} "
              f"{time.perf_counter() - start:>8.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
