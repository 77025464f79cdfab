"""Eval-mode speed of a zoo model against timm on the same threads: se_numpy / timm as a ratio.

    PYTHONPATH=. /path/to/torch-venv/bin/python benchmarks/bench_zoo_eval.py
    ... --model seresnet50 --size 224 --batch 1 --threads 2 --rounds 7 --out bench_out

Needs torch, timm and threadpoolctl beside se_numpy (never dependencies of the
project; keep them in a separate venv). Both networks hold the same weights
(timm's, randomised BatchNorm statistics, loaded into se_numpy; the logits are
compared first) and run in eval mode on the same image. Threads: torch gets
``torch.set_num_threads(N)``; se_numpy's BLAS calls are limited to N with
threadpoolctl and Numba's parallel kernels to N with ``numba.set_num_threads``.

One round times ``--repeats`` forwards of each framework (after ``--warmup``
untimed ones, which include Numba's compilation) and keeps the median;
``--fold`` times se_numpy with its batch norms folded into the convolutions
(``sn.nn.fold_batch_norm``), timm as it is (unfolded), and says so; the
rounds alternate se_numpy and timm so both see the same load, and the ratio
reported is the median of the per-round ratios, with the load average beside it.
Writes ``zoo_eval_<model>.json`` into ``--out`` (atomically).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))


def median_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="seresnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default="numpy,numba")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default="bench_out")
    parser.add_argument("--inplace", action="store_true",
                        help="SE blocks write their residual unit's output over their input "
                             "(SEBlock(inplace=True): evaluation only)")
    parser.add_argument("--fold", action="store_true",
                        help="time se_numpy with batch norm folded into the convolutions "
                             "(sn.nn.fold_batch_norm; timm, as it is used, does not fold)")
    args = parser.parse_args(argv)

    import numba
    import threadpoolctl
    import timm
    import torch

    import se_numpy as sn
    from timm_reference import randomise_batch_norm

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    reference = randomise_batch_norm(timm.create_model(args.model)).eval()
    state = {key: value.numpy() for key, value in reference.state_dict().items()}
    model = sn.models.create(args.model).eval()
    model.load_state_dict(state)
    for module in model.modules():
        if isinstance(module, sn.nn.SEBlock):
            module.inplace = args.inplace
    if args.fold:
        model = sn.nn.fold_batch_norm(model)
    image = np.random.default_rng(0).standard_normal(
        (args.batch, 3, args.size, args.size)).astype(np.float32)
    tensor = torch.from_numpy(image)

    def run_timm():
        with torch.inference_mode():
            return reference(tensor)

    result = {"model": args.model, "input": [args.batch, 3, args.size, args.size],
              "inplace": args.inplace, "batch_norm_folded": args.fold,
              "threads": args.threads, "torch": torch.__version__, "timm": timm.__version__,
              "backends": {}}
    with threadpoolctl.threadpool_limits(args.threads):
        expected = run_timm().numpy()
        for backend in args.backends.split(","):
            with sn.use_backend(backend):
                logits = model(image)
                error = float(np.abs(logits - expected).max() / np.abs(expected).max())
                for _ in range(args.warmup):
                    model(image)
                    run_timm()
                ours, theirs, ratios = [], [], []
                for _ in range(args.rounds):
                    ours.append(median_time(lambda: model(image), args.repeats))
                    theirs.append(median_time(run_timm, args.repeats))
                    ratios.append(ours[-1] / theirs[-1])
            result["backends"][backend] = {
                "se_numpy_seconds": statistics.median(ours),
                "timm_seconds": statistics.median(theirs),
                "ratio": statistics.median(ratios), "ratios": ratios,
                "relative_logit_error": error}
    result["loadavg"] = open("/proc/loadavg").read().split()[:3] if os.path.exists(
        "/proc/loadavg") else None

    print(f"{args.model} eval, input {tuple(result['input'])}, {args.threads} threads, "
          f"batch norm {'folded' if args.fold else 'not folded'}, "
          f"load average {result['loadavg']}")
    print(f"{'backend':<8} {'se_numpy':>10} {'timm':>10} {'ratio':>7}  per-round ratios")
    for backend, row in result["backends"].items():
        print(f"{backend:<8} {row['se_numpy_seconds'] * 1e3:>8.1f}ms {row['timm_seconds'] * 1e3:>8.1f}ms "
              f"{row['ratio']:>6.2f}x  {', '.join(f'{r:.2f}' for r in row['ratios'])}"
              f"  (logits agree to {row['relative_logit_error']:.1e})")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"zoo_eval_{args.model}.json")
    handle, temporary = tempfile.mkstemp(dir=args.out, suffix=".json")
    with os.fdopen(handle, "w") as stream:
        json.dump(result, stream, indent=1)
    os.replace(temporary, path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
