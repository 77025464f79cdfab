"""One SGD training step of SE-ResNet-20 (batch 128, 3 x 32 x 32), se_numpy against PyTorch CPU.

    python benchmarks/bench_train_step.py                       # se_numpy backends only
    python benchmarks/bench_train_step.py --torch-python /tmp/torchvenv/bin/python --threads 2
    ... --rows se_resnet20:float32,resnet20:float32,se_resnet20:float64

Each row of ``--rows`` is a model (``se_resnet20`` or ``resnet20``) and a
dtype; every row is timed against PyTorch in its own alternating rounds.
Threads: ``--threads`` N is given to ``torch.set_num_threads``, to Numba
(``numba.set_num_threads``) and to the BLAS NumPy loaded (threadpoolctl), so
both frameworks use the same cores.

A step is forward, cross-entropy, backward and an SGD update with momentum 0.9
(the trainer's inner loop). The script times it on each CPU backend
(``numpy``, ``numba``), picks the fastest, prints a per-layer breakdown of
forward and backward time, and, given a Python that has PyTorch installed, runs
the same network in PyTorch eager mode (same architecture: the se_numpy weights
are loaded into it and the logits compared) and reports the time ratio.
PyTorch is never a dependency of the project: keep it in a separate venv.

The figure of merit is the ratio se_numpy / PyTorch (target: <= 1). Times are
the median of ``--repeats`` steps after ``--warmup`` untimed ones. On a shared
machine the load changes from second to second, so the two are timed in
``--rounds`` alternating rounds (se_numpy, then PyTorch, then se_numpy, ...);
the ratio reported is the median of the per-round ratios, and the load average
is printed beside it.
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import same_threads  # noqa: E402  (before se_numpy: it keeps the starting environment)

MODEL, BATCH, IMAGE = "se_resnet20", 128, (3, 32, 32)
MODELS = ("se_resnet20", "resnet20")
DEFAULT_ROWS = "se_resnet20:float32,resnet20:float32,se_resnet20:float64"


def _inputs(batch, seed=0, dtype=np.float32, image=IMAGE):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + tuple(image)).astype(dtype)
    labels = rng.integers(0, 10, batch)
    return x, labels


# ------------------------------------------------------------------ se_numpy
def _numpy_step_fn(model, loss_fn, optimizer):
    def step(x, labels):
        logits = model(x)
        loss_fn(logits, labels)
        model.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
    return step


def time_se_numpy(backend, batch, warmup, repeats, model_name=MODEL, dtype="float32",
                  image=IMAGE, input_grad=False):
    """Median seconds of one step. The stem's dx (the gradient of the images) is not
    computed unless ``input_grad``: the trainer skips it (``sn.nn.data_gradient_skipped``),
    as PyTorch does, the images need none."""
    import se_numpy as sn
    sn.use_backend(backend)
    model = sn.models.create(model_name, num_classes=10, seed=0, dtype=np.dtype(dtype))
    optimizer = sn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    step = _numpy_step_fn(model, sn.nn.CrossEntropyLoss(), optimizer)
    x, labels = _inputs(batch, dtype=dtype, image=image)
    with contextlib.nullcontext() if input_grad else sn.nn.data_gradient_skipped(model):
        for _ in range(warmup):                # includes Numba compilation on the first call
            step(x, labels)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step(x, labels)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def layer_breakdown(backend, batch, repeats=3):
    """Seconds of forward and backward per layer kind and per top-level child (median step)."""
    import se_numpy as sn
    sn.use_backend(backend)
    model = sn.models.create(MODEL, num_classes=10, seed=0)
    loss_fn = sn.nn.CrossEntropyLoss()
    totals = defaultdict(float)

    def wrap(module, key, method_name, counted_as=None):
        original = getattr(module, method_name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = original(*args, **kwargs)
            totals[(key, counted_as or method_name)] += time.perf_counter() - start
            return out
        object.__setattr__(module, method_name, timed)

    # leaves (and SE blocks as a whole) by type; top-level children by name
    for name, module in model.named_modules():
        is_leaf = not list(module.children())
        if is_leaf or type(module).__name__ == "SEBlock":
            if "." in name and type(module).__name__ in ("Linear", "SELinear") and ".se" in name:
                continue                         # counted inside its SE block
            for method in ("forward", "backward"):
                wrap(module, "kind:" + type(module).__name__, method)
            if hasattr(module, "forward_relu"):      # BN → ReLU fused: counted as BN forward
                wrap(module, "kind:" + type(module).__name__, "forward_relu", "forward")
    for name, child in model.named_children():
        for method in ("forward", "backward"):
            wrap(child, "child:" + name, method)
    x, labels = _inputs(batch)
    with sn.nn.data_gradient_skipped(model):     # as in time_se_numpy
        for _ in range(1 + repeats):
            if _ == 1:
                totals.clear()                   # the first pass compiles / warms caches
            loss_fn(model(x), labels)
            model.backward(loss_fn.backward())
    return {f"{key}.{method}": value / repeats for (key, method), value in totals.items()}


# ------------------------------------------------------------------ PyTorch (run in its own venv)
TORCH_CODE = r'''
import json, sys, time
import numpy as np
import torch
from torch import nn
torch.manual_seed(0)
batch, warmup, repeats = (int(v) for v in sys.argv[1:4])
torch.set_num_threads(int(sys.argv[4]))
with_se, dtype = sys.argv[6] == "se_resnet20", getattr(torch, sys.argv[7])
size = int(sys.argv[8])

class SE(nn.Module):     # the excitation FCs as 1x1 convolutions, as se_numpy stores them
    def __init__(self, c, r=16):
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(1, c // r), 1); self.fc2 = nn.Conv2d(max(1, c // r), c, 1)
    def forward(self, x):
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(cout)
        self.se = SE(cout) if with_se else nn.Identity()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))
    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)

class SEResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(16)
        cin, stages = 16, []
        for i, width in enumerate((16, 32, 64)):
            blocks = []
            for j in range(3):
                blocks.append(Block(cin, width, 2 if (i > 0 and j == 0) else 1)); cin = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, 10)
    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))

model = SEResNet20().to(dtype)
result = {}
state_path = sys.argv[5] if len(sys.argv) > 5 else ""
if state_path:
    # same weights as the se_numpy model: the logits must agree if the architectures do
    with np.load(state_path) as saved:
        state = {k: torch.from_numpy(saved[k].copy()) for k in saved.files if k != "x"}
        x_check = torch.from_numpy(saved["x"]).to(dtype)
    missing, unexpected = model.load_state_dict(state, strict=False)
    result["state_dict_mismatch"] = [str(k) for k in list(missing) + list(unexpected)]
    model.eval()
    with torch.no_grad():
        result["logits"] = model(x_check).numpy().tolist()
    model.train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
loss_fn = nn.CrossEntropyLoss()
rng = np.random.default_rng(0)
x = torch.from_numpy(rng.standard_normal((batch, 3, size, size))).to(dtype)
y = torch.from_numpy(rng.integers(0, 10, batch))
def step():
    opt.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    opt.step()
for _ in range(warmup):
    step()
times = []
for _ in range(repeats):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
result["seconds"] = float(np.median(times)); result["torch"] = torch.__version__
result["threads"] = torch.get_num_threads()
print(json.dumps(result))
'''


def time_torch(python, batch, warmup, repeats, threads, state_path, model_name=MODEL,
               dtype="float32", image=IMAGE):
    """PyTorch's step in its own process, with the environment this script started with
    (``same_threads``: not the OpenMP wait policy se_numpy sets for itself)."""
    completed = subprocess.run([python, "-c", TORCH_CODE, str(batch), str(warmup), str(repeats),
                                str(threads), state_path, model_name, dtype, str(image[1])],
                               capture_output=True, text=True, env=same_threads.torch_environment())
    if completed.returncode != 0:
        raise RuntimeError(f"PyTorch run failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _save_reference(path, model_name=MODEL, dtype="float32"):
    """se_numpy's initial weights and eval-mode logits on 4 images, for the architecture check."""
    import se_numpy as sn
    sn.use_backend("numpy")
    model = sn.models.create(model_name, num_classes=10, seed=0, dtype=np.dtype(dtype)).eval()
    x, _ = _inputs(4, seed=1, dtype=dtype)
    np.savez(path, x=x, **model.state_dict())
    return model(x)


def print_breakdown(breakdown, backend):
    print(f"\nper-layer time on {backend} (ms per step; forward / backward)")
    for prefix, title in (("child:", "by top-level child"), ("kind:", "by layer kind")):
        print(f"  {title}:")
        names = sorted({key.split(".")[0] for key in breakdown if key.startswith(prefix)},
                       key=lambda n: -(breakdown.get(n + ".forward", 0)
                                       + breakdown.get(n + ".backward", 0)))
        for name in names:
            forward = breakdown.get(name + ".forward", 0.0) * 1000
            backward = breakdown.get(name + ".backward", 0.0) * 1000
            print(f"    {name[len(prefix):]:<16}{forward:9.1f} /{backward:9.1f}")
    for method in ("forward", "backward"):
        children = sum(v for k, v in breakdown.items() if k.startswith("child:")
                       and k.endswith(method))
        kinds = sum(v for k, v in breakdown.items() if k.startswith("kind:") and k.endswith(method))
        breakdown[f"unattributed.{method}"] = children - kinds
    print(f"    {'rest':<16}{breakdown['unattributed.forward'] * 1000:9.1f} /"
          f"{breakdown['unattributed.backward'] * 1000:9.1f}   (SE gating inside blocks, "
          "residual additions, block glue)")


def compare_with_torch(args, backend, model_name, dtype, first_time):
    """Alternating rounds of se_numpy and PyTorch for one (model, dtype) row."""
    import tempfile
    with tempfile.TemporaryDirectory() as directory:
        state_path = os.path.join(directory, "reference.npz")
        reference_logits = _save_reference(state_path, model_name, dtype)
        torch_result = time_torch(args.torch_python, args.batch, args.warmup, args.repeats,
                                  args.threads, state_path, model_name, dtype)
    difference = float(np.max(np.abs(np.array(torch_result["logits"]) - reference_logits)))
    row = {"model": model_name, "dtype": dtype, "rounds": [],
           "max_logit_difference": difference,
           "state_dict_mismatch": torch_result["state_dict_mismatch"],
           "torch": torch_result["torch"], "torch_threads": torch_result["threads"]}
    for round_index in range(args.rounds):
        if round_index > 0:            # round 0's PyTorch time is the run above
            torch_result = time_torch(args.torch_python, args.batch, args.warmup, args.repeats,
                                      args.threads, "", model_name, dtype)
        ours = (first_time if round_index == 0 and first_time is not None
                else time_se_numpy(backend, args.batch, args.warmup, args.repeats,
                                   model_name, dtype))
        row["rounds"].append({"se_numpy": ours, "torch": torch_result["seconds"],
                              "ratio": ours / torch_result["seconds"],
                              "load_average": os.getloadavg()[0]})
        last = row["rounds"][-1]
        print(f"  round {round_index + 1}: se_numpy[{backend}] {ours * 1000:7.1f} ms, PyTorch "
              f"{last['torch'] * 1000:7.1f} ms, ratio {last['ratio']:.2f}  "
              f"(load average {last['load_average']:.2f})")
    row["se_numpy_seconds"] = float(np.median([r["se_numpy"] for r in row["rounds"]]))
    row["torch_seconds"] = float(np.median([r["torch"] for r in row["rounds"]]))
    row["ratio_to_torch"] = float(np.median([r["ratio"] for r in row["rounds"]]))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default="numpy,numba")
    parser.add_argument("--rows", default=DEFAULT_ROWS,
                        help="model:dtype pairs, comma-separated (models: se_resnet20, resnet20)")
    parser.add_argument("--torch-python", default=None,
                        help="a Python interpreter with torch installed (separate venv)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating se_numpy / PyTorch timing rounds (ratio: their median)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the per-layer table")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    rows = [tuple(item.split(":")) for item in args.rows.split(",")]
    for row in rows:
        if len(row) != 2 or row[0] not in MODELS or row[1] not in ("float32", "float64"):
            parser.error(f"--rows: expected model:dtype with model in {MODELS} and dtype "
                         f"float32 or float64, got {':'.join(row)!r}")
    policy = same_threads.set_se_numpy_threads(args.threads)   # as torch gets
    print(f"OpenMP wait policy: se_numpy {policy}, PyTorch {same_threads.torch_wait_policy()} "
          f"(each its own default: benchmarks/same_threads.py)")

    results = {"model": MODEL, "batch": args.batch, "cpu_count": os.cpu_count(),
               "threads": args.threads, "backends": {},
               "omp_wait_policy": {"se_numpy": policy,
                                   "torch": same_threads.torch_wait_policy()}}
    for backend in args.backends.split(","):
        seconds = time_se_numpy(backend, args.batch, args.warmup, args.repeats)
        results["backends"][backend] = seconds
        print(f"se_numpy [{backend:5s}] {MODEL} float32 train step: {seconds * 1000:8.1f} ms  "
              f"(load average {os.getloadavg()[0]:.2f})")
    fastest = min(results["backends"], key=results["backends"].get)
    results["fastest"] = fastest
    print(f"fastest CPU backend: {fastest}")

    if not args.no_breakdown:
        results["breakdown"] = layer_breakdown(fastest, args.batch)
        print_breakdown(results["breakdown"], fastest)

    if args.torch_python:
        results["rows"] = []
        for model_name, dtype in rows:
            print(f"\n{model_name} {dtype}, batch {args.batch}, {args.threads} threads:")
            first = (results["backends"][fastest] if (model_name, dtype) == (MODEL, "float32")
                     else None)
            row = compare_with_torch(args, fastest, model_name, dtype, first)
            results["rows"].append(row)
            print(f"  same architecture check: max |logit difference| = "
                  f"{row['max_logit_difference']:.2e} (state-dict mismatches: "
                  f"{row['state_dict_mismatch'] or 'none'})")
            print(f"  ratio se_numpy[{fastest}] / PyTorch {row['torch']} = "
                  f"{row['ratio_to_torch']:.2f}  ({row['se_numpy_seconds'] * 1000:.1f} ms / "
                  f"{row['torch_seconds'] * 1000:.1f} ms, median of {args.rounds} alternating "
                  f"rounds; target <= 1)")
        results["ratio_to_torch"] = results["rows"][0]["ratio_to_torch"]
    if args.json:
        from se_numpy.atomic import atomic_write
        atomic_write(args.json, lambda stream: stream.write(json.dumps(results, indent=2).encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
