"""Eval-mode speed of a zoo model against timm on the same threads: se_numpy / timm as a ratio.

    python benchmarks/bench_zoo_eval.py --timm-python /path/to/torch-venv/bin/python
    ... --model seresnet50 --size 224 --batch 1 --threads 2 --rounds 7 --out bench_out
    PYTHONPATH=. /path/to/torch-venv/bin/python benchmarks/bench_zoo_eval.py   # one venv for both

timm runs in a process of its own. GNU OpenMP reads ``OMP_WAIT_POLICY``
once, when its runtime is loaded: PyTorch's at ``import torch`` (the wheel
ships its own ``libgomp.so.1``), Numba's when its threading layer starts.
se_numpy's numba backend sets ``passive`` for its process (its OpenMP workers
must not spin on the cores its convolution threads need); PyTorch runs best
with OpenMP's default (spinning for a while). In one process the two cannot
both get their defaults reliably: where the loader gives both ONE runtime
(both naming ``libgomp.so.1``), the first to load it sets the policy for
both; where each loads its own, what each reads depends on the order of the
imports. So this process imports neither torch nor timm: it starts ``--timm-python`` (default:
this interpreter) on this same file as a persistent worker, with the
environment this script was started with, and each framework runs with its
own defaults. The JSON records the interpreter that ran timm and the
``OMP_WAIT_POLICY`` each side ran with. To see what a runtime read, run with
``OMP_DISPLAY_ENV=verbose``: ``GOMP_SPINCOUNT = '0'`` is passive.

Needs torch and timm in the worker's interpreter and threadpoolctl beside
se_numpy (torch and timm are never dependencies of the project). The worker
builds timm's model (randomised BatchNorm statistics, see
``tests/timm_reference.py``), writes its state dict (NumPy arrays) into a
temporary directory, and computes its logits on the image this process wrote
there (a file rather than a shared seed: both sides read the same bytes);
this process loads the weights into se_numpy and compares the logits first.
Threads: the worker calls ``torch.set_num_threads(N)``; here se_numpy's BLAS
calls are limited to N with threadpoolctl and Numba's parallel kernels to N
with ``numba.set_num_threads``.

One round times ``--repeats`` forwards of se_numpy here, then asks the worker
(one JSON line on its stdin, one back on its stdout) to time ``--repeats``
forwards of timm under ``torch.inference_mode()``; each keeps the median.
``--warmup`` untimed forwards come first (se_numpy's include Numba's
compilation; the worker does its own once, at start). ``--fold`` times
se_numpy with its batch norms folded into the convolutions
(``sn.nn.fold_batch_norm``), timm as it is (unfolded), and says so. The
rounds alternate se_numpy and timm so both see the same load, and the ratio
reported is the median of the per-round ratios, with the load average beside
it. Writes ``zoo_eval_<model>.json`` into ``--out`` (atomically).
"""
# first: keeps the environment as this script was started, before se_numpy's numba
# backend sets OMP_WAIT_POLICY for this process; the timm worker starts with that one
import same_threads

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_FILE, STATE_FILE, LOGITS_FILE = "image.npy", "timm_state.npz", "timm_logits.npy"


def median_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse_args(argv):
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
    parser.add_argument("--timm-python", default=sys.executable,
                        help="interpreter (with torch and timm) that runs timm in its own "
                             "process (default: this one)")
    # the worker's side of the script, started by the main process (not for users)
    parser.add_argument("--serve-timm", metavar="DIRECTORY", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------- the timm worker

def serve_timm(args):
    """The timm side, in its own process: build, write weights and logits, warm up, then
    answer ``{"command": "time", "repeats": n}`` with ``{"seconds": median}`` until
    ``{"command": "quit"}`` or the end of stdin."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)   # whatever torch or timm print goes to stderr, never into the replies
    sys.path.append(REPOSITORY)   # timm_reference imports se_numpy (lazily: no backend, no kernels)
    sys.path.insert(0, os.path.join(REPOSITORY, "tests"))
    import timm
    import torch
    from timm_reference import randomise_batch_norm

    torch.set_num_threads(args.threads)
    reference = randomise_batch_norm(timm.create_model(args.model)).eval()
    directory = args.serve_timm
    np.savez(os.path.join(directory, STATE_FILE),
             **{key: value.numpy() for key, value in reference.state_dict().items()})
    image = torch.from_numpy(np.load(os.path.join(directory, IMAGE_FILE)))

    def forward():
        with torch.inference_mode():
            return reference(image)

    np.save(os.path.join(directory, LOGITS_FILE), forward().numpy())
    for _ in range(args.warmup):
        forward()
    print(json.dumps({"python": sys.executable, "torch": torch.__version__,
                      "timm": timm.__version__, "threads": torch.get_num_threads(),
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}),
          file=replies)
    for line in iter(sys.stdin.readline, ""):
        request = json.loads(line)
        if request["command"] == "quit":
            break
        print(json.dumps({"seconds": median_time(forward, request["repeats"])}), file=replies)
    return 0


class TimmWorker:
    """The worker process seen from the main one: one JSON line out, one JSON line back.

    A context manager: on leaving it (normally or on an error) the worker is
    told to quit and waited for, and killed if it does not; a worker that
    dies raises RuntimeError with its exit status and the end of its stderr."""

    def __init__(self, python, args, directory):
        self.python = python
        self.stderr = open(os.path.join(directory, "timm_worker.stderr"), "w+")
        command = [python, os.path.abspath(__file__), "--serve-timm", directory,
                   "--model", args.model, "--size", str(args.size), "--batch", str(args.batch),
                   "--threads", str(args.threads), "--warmup", str(args.warmup)]
        try:
            self.process = subprocess.Popen(command, env=same_threads.torch_environment(), text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=self.stderr)
        except OSError as error:
            self.stderr.close()
            raise RuntimeError(f"--timm-python {python!r} cannot be started: {error}") from error

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def receive(self):
        line = self.process.stdout.readline()
        if not line:
            raise self.failure("stopped without answering")
        return json.loads(line)

    def request(self, **message):
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise self.failure("stopped before the request could be sent") from None
        return self.receive()

    def failure(self, what):
        try:
            status = self.process.wait(timeout=30)
            status = (f"killed by {signal.Signals(-status).name}" if status < 0
                      else f"exit status {status}")
        except subprocess.TimeoutExpired:
            status = "still running"
        self.stderr.seek(0)
        tail = "".join(self.stderr.readlines()[-40:]) or "(nothing)\n"
        return RuntimeError(f"the timm worker ({self.python}) {what}, {status}; "
                            f"its stderr ends with:\n{tail}")

    def close(self):
        """Ask the worker to quit (its stdin then ends too), wait a minute, else kill it."""
        with contextlib.suppress(BrokenPipeError):   # a worker that already died
            self.process.stdin.write(json.dumps({"command": "quit"}) + "\n")
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.stderr.close()


# ----------------------------------------------------------------- the main process

def build_model(sn, args):
    """se_numpy's model with random weights (timm's are loaded once the worker wrote them)."""
    model = sn.models.create(args.model).eval()
    for module in model.modules():
        if isinstance(module, sn.nn.SEBlock):
            module.inplace = args.inplace
    return model


def time_backends(sn, model, image, expected, worker, args):
    """Per backend: the logit error, then alternating rounds of se_numpy here and timm there."""
    rows = {}
    for backend in args.backends.split(","):
        with sn.use_backend(backend):
            logits = model(image)
            error = float(np.abs(logits - expected).max() / np.abs(expected).max())
            for _ in range(args.warmup):
                model(image)
            ours, theirs, ratios = [], [], []
            for _ in range(args.rounds):
                ours.append(median_time(lambda: model(image), args.repeats))
                theirs.append(worker.request(command="time", repeats=args.repeats)["seconds"])
                ratios.append(ours[-1] / theirs[-1])
        rows[backend] = {
            "se_numpy_seconds": statistics.median(ours),
            "timm_seconds": statistics.median(theirs),
            "ratio": statistics.median(ratios), "ratios": ratios,
            "relative_logit_error": error}
    return rows


def print_table(result, args):
    print(f"{args.model} eval, input {tuple(result['input'])}, {args.threads} threads, "
          f"batch norm {'folded' if args.fold else 'not folded'}, "
          f"load average {result['loadavg']}")
    policy = result["omp_wait_policy"]
    print(f"timm in its own process ({result['timm_python']}); OMP_WAIT_POLICY "
          f"se_numpy {policy['se_numpy']}, timm {policy['timm']}")
    print(f"{'backend':<8} {'se_numpy':>10} {'timm':>10} {'ratio':>7}  per-round ratios")
    for backend, row in result["backends"].items():
        print(f"{backend:<8} {row['se_numpy_seconds'] * 1e3:>8.1f}ms {row['timm_seconds'] * 1e3:>8.1f}ms "
              f"{row['ratio']:>6.2f}x  {', '.join(f'{r:.2f}' for r in row['ratios'])}"
              f"  (logits agree to {row['relative_logit_error']:.1e})")


def write_json(result, args):
    from se_numpy.atomic import atomic_write       # the project's one atomic writer
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"zoo_eval_{args.model}.json")
    atomic_write(path, lambda stream: stream.write(json.dumps(result, indent=1).encode()))
    print(f"wrote {path}")


def main(argv=None):
    args = parse_args(argv)
    if args.serve_timm:
        return serve_timm(args)
    # a terminated run unwinds like an error: the worker is stopped, the temporary files removed
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))

    # Imports se_numpy's numba backend (which sets the OMP_WAIT_POLICY default)
    # BEFORE numba.set_num_threads: that call starts Numba's OpenMP runtime,
    # which reads the policy once; after it the policy can no longer change.
    se_numpy_policy = same_threads.set_se_numpy_threads(args.threads)
    import se_numpy as sn

    image = np.random.default_rng(0).standard_normal(
        (args.batch, 3, args.size, args.size)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="zoo_eval_") as directory:
        np.save(os.path.join(directory, IMAGE_FILE), image)
        with TimmWorker(args.timm_python, args, directory) as worker:
            model = build_model(sn, args)   # while the worker builds timm's
            timm_side = worker.receive()    # weights and logits written, warm-up done
            with np.load(os.path.join(directory, STATE_FILE)) as state:
                model.load_state_dict(dict(state))
            if args.fold:
                model = sn.nn.fold_batch_norm(model)
            expected = np.load(os.path.join(directory, LOGITS_FILE))
            rows = time_backends(sn, model, image, expected, worker, args)

    result = {"model": args.model, "input": [args.batch, 3, args.size, args.size],
              "inplace": args.inplace, "batch_norm_folded": args.fold,
              "threads": args.threads, "torch": timm_side["torch"], "timm": timm_side["timm"],
              "timm_python": timm_side["python"], "timm_threads": timm_side["threads"],
              "omp_wait_policy": {"se_numpy": se_numpy_policy,
                                  "timm": timm_side["omp_wait_policy"]},
              "backends": rows}
    result["loadavg"] = open("/proc/loadavg").read().split()[:3] if os.path.exists(
        "/proc/loadavg") else None
    print_table(result, args)
    write_json(result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
