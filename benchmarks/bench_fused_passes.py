"""What fusing buys: BN + ReLU, a residual unit's end, evaluation-mode BN, the in-place scale.

    python benchmarks/bench_fused_passes.py --threads 2 --repeats 11

Each row times a fused path against the same arithmetic as separate passes,
both on the ``numba`` backend, alternating call by call so that both see the
same load (the median of ``--repeats`` is printed, with ``np.copyto`` of the
same map beside it as the memory's yardstick, and the load average):

* BN + ReLU, forward + backward: ``batch_norm2d_forward`` then ``relu_forward``
  (and back) against ``batch_norm2d_relu_forward`` and its backward;
* the end of an SE residual unit, forward + backward: ``scale_add_forward``
  then ReLU with its mask, against ``scale_add_relu_forward`` and
  ``relu_backward`` from the output;
* evaluation-mode BN + ReLU: the training-mode normalisation (it also writes
  x̂) then ReLU, against the affine pass ``batch_norm_affine_relu``;
* out of place against in place: ``scale_add_relu_forward`` against
  ``scale_add_relu_forward_in_place`` (on a fresh copy of u each time, made
  outside the timed call).
"""
import argparse
import os
import statistics
import time

import numpy as np

SHAPES = ((128, 16, 32, 32), (128, 32, 16, 16), (128, 64, 8, 8), (16, 256, 56, 56))


def alternate(functions, repeats):
    """Median seconds of each function, called in turn ``repeats`` times (after one untimed call)."""
    times = [[] for _ in functions]
    for function in functions:
        function()
    for _ in range(repeats):
        for slot, function in enumerate(functions):
            start = time.perf_counter()
            function()
            times[slot].append(time.perf_counter() - start)
    return [statistics.median(slot) for slot in times]


def cases(shape, dtype, rng):
    """(label, separate passes, fused) for one map shape."""
    from se_numpy.functional.activation import relu_backward, relu_forward
    from se_numpy.functional.norm import (batch_norm2d_backward, batch_norm2d_forward,
                                          batch_norm2d_relu_forward)
    from se_numpy.kernels import current

    kernels = current()
    channels = shape[1]
    x, dy, shortcut = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    weight = rng.uniform(0.5, 2, channels).astype(dtype)
    bias = rng.uniform(-0.5, 0.5, channels).astype(dtype)
    gates = rng.uniform(0.1, 1, shape[:2]).astype(dtype)

    def bn_relu_separate():
        y, cache = batch_norm2d_forward(x, weight, bias)
        _, mask = relu_forward(y)
        return batch_norm2d_backward(relu_backward(dy, mask), cache)

    def bn_relu_fused():
        _, cache = batch_norm2d_relu_forward(x, weight, bias)
        return batch_norm2d_backward(dy, cache)

    def unit_end_separate():
        _, mask = relu_forward(kernels.scale_add_forward(x, gates, shortcut))
        return relu_backward(dy, mask)

    def unit_end_fused():
        return kernels.relu_backward(dy, kernels.scale_add_relu_forward(x, gates, shortcut))

    def eval_separate():
        return relu_forward(kernels.batch_norm_normalize(x, bias, weight, weight, bias)[0])[0]

    def eval_affine():
        return kernels.batch_norm_affine_relu(x, weight, bias)

    copies = []

    def out_of_place():
        return kernels.scale_add_relu_forward(x, gates, shortcut)

    def in_place():
        return kernels.scale_add_relu_forward_in_place(copies.pop(), gates, shortcut)

    return [("BN + ReLU, forward + backward", bn_relu_separate, bn_relu_fused, None),
            ("SE unit end, forward + backward", unit_end_separate, unit_end_fused, None),
            ("evaluation BN + ReLU, forward", eval_separate, eval_affine, None),
            ("scale-add-ReLU, out of place / in place", out_of_place, in_place,
             (copies, x))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = parser.parse_args(argv)

    import numba
    import threadpoolctl

    import se_numpy as sn

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    threadpoolctl.threadpool_limits(args.threads, user_api="blas")
    rng = np.random.default_rng(0)
    print(f"numba backend, {args.dtype}, {args.threads} threads, load average "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}")
    print(f"{'shape':<20} {'path':<42} {'separate':>9} {'fused':>9} {'ratio':>6} {'copy':>8}")
    with sn.use_backend("numba"):
        for shape in SHAPES:
            repeats = args.repeats if np.prod(shape) < 2 ** 24 else max(3, args.repeats // 3)
            for label, separate, fused, in_place_inputs in cases(shape, np.dtype(args.dtype), rng):
                if in_place_inputs is not None:       # fresh u for every in-place call
                    copies, u = in_place_inputs
                    copies.extend(u.copy() for _ in range(repeats + 1))
                destination = np.empty(shape, dtype=args.dtype)
                source = np.ones(shape, dtype=args.dtype)
                separate_time, fused_time, copy_time = alternate(
                    [separate, fused, lambda: np.copyto(destination, source)], repeats)
                print(f"{str(shape):<20} {label:<42} {separate_time * 1e3:7.2f}ms "
                      f"{fused_time * 1e3:7.2f}ms {fused_time / separate_time:6.2f} "
                      f"{copy_time * 1e3:6.2f}ms", flush=True)
    print(f"load average after: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
