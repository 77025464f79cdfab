"""One SGD training step of SE-ResNet-20 (batch 128, 3 x 32 x 32), se_numpy against PyTorch CPU.

    python benchmarks/bench_train_step.py                       # se_numpy backends only
    python benchmarks/bench_train_step.py --torch-python /tmp/torchvenv/bin/python

A step is forward, cross-entropy, backward and an SGD update with momentum 0.9
(the trainer's inner loop). The script times it on each CPU backend
(``numpy``, ``numba``), picks the fastest, prints a per-layer breakdown of
forward and backward time, and, given a Python that has PyTorch installed, runs
the same network in PyTorch eager mode (same architecture: the se_numpy weights
are loaded into it and the logits compared) and reports the time ratio.
PyTorch is never a dependency of the project: keep it in a separate venv.

The figure of merit is the ratio se_numpy / PyTorch (target: <= 2). Times are
the median of ``--repeats`` steps after ``--warmup`` untimed ones. On a shared
machine the load changes from second to second, so the two are timed in
``--rounds`` alternating rounds (se_numpy, then PyTorch, then se_numpy, ...);
the ratio reported is the median of the per-round ratios, and the load average
is printed beside it.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np

MODEL, BATCH, IMAGE = "se_resnet20", 128, (3, 32, 32)


def _inputs(batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + IMAGE).astype(np.float32)
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


def time_se_numpy(backend, batch, warmup, repeats):
    import se_numpy as sn
    sn.use_backend(backend)
    model = sn.models.create(MODEL, num_classes=10, seed=0)
    optimizer = sn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    step = _numpy_step_fn(model, sn.nn.CrossEntropyLoss(), optimizer)
    x, labels = _inputs(batch)
    for _ in range(warmup):                    # includes Numba compilation on the first call
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

    def wrap(module, key, method_name):
        original = getattr(module, method_name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = original(*args, **kwargs)
            totals[(key, method_name)] += time.perf_counter() - start
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
    for name, child in model.named_children():
        for method in ("forward", "backward"):
            wrap(child, "child:" + name, method)
    x, labels = _inputs(batch)
    for _ in range(1 + repeats):
        if _ == 1:
            totals.clear()                       # the first pass compiles / warms caches
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

class SE(nn.Module):
    def __init__(self, c, r=16):
        super().__init__()
        self.fc1 = nn.Linear(c, max(1, c // r)); self.fc2 = nn.Linear(max(1, c // r), c)
    def forward(self, x):
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
        return x * s[:, :, None, None]

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(cout)
        self.se = SE(cout)
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

model = SEResNet20()
result = {}
state_path = sys.argv[5] if len(sys.argv) > 5 else ""
if state_path:
    # same weights as the se_numpy model: the logits must agree if the architectures do
    with np.load(state_path) as saved:
        state = {k: torch.from_numpy(saved[k].copy()) for k in saved.files if k != "x"}
        x_check = torch.from_numpy(saved["x"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    result["state_dict_mismatch"] = [str(k) for k in list(missing) + list(unexpected)]
    model.eval()
    with torch.no_grad():
        result["logits"] = model(x_check).numpy().tolist()
    model.train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
loss_fn = nn.CrossEntropyLoss()
rng = np.random.default_rng(0)
x = torch.from_numpy(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32))
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


def time_torch(python, batch, warmup, repeats, threads, state_path):
    completed = subprocess.run([python, "-c", TORCH_CODE, str(batch), str(warmup), str(repeats),
                                str(threads), state_path], capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"PyTorch run failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _save_reference(path):
    """se_numpy's initial weights and eval-mode logits on 4 images, for the architecture check."""
    import se_numpy as sn
    sn.use_backend("numpy")
    model = sn.models.create(MODEL, num_classes=10, seed=0).eval()
    x, _ = _inputs(4, seed=1)
    np.savez(path, x=x, **model.state_dict())
    return model(x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default="numpy,numba")
    parser.add_argument("--torch-python", default=None,
                        help="a Python interpreter with torch installed (separate venv)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating se_numpy / PyTorch timing rounds (ratio: their median)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    results = {"model": MODEL, "batch": args.batch, "cpu_count": os.cpu_count(), "backends": {}}
    for backend in args.backends.split(","):
        seconds = time_se_numpy(backend, args.batch, args.warmup, args.repeats)
        results["backends"][backend] = seconds
        print(f"se_numpy [{backend:5s}] train step: {seconds * 1000:8.1f} ms")
    fastest = min(results["backends"], key=results["backends"].get)
    results["fastest"] = fastest
    print(f"fastest CPU backend: {fastest}")

    breakdown = layer_breakdown(fastest, args.batch)
    results["breakdown"] = breakdown
    print(f"\nper-layer time on {fastest} (ms per step; forward / backward)")
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

    if args.torch_python:
        import tempfile
        with tempfile.TemporaryDirectory() as directory:
            state_path = os.path.join(directory, "reference.npz")
            reference_logits = _save_reference(state_path)
            torch_result = time_torch(args.torch_python, args.batch, args.warmup, args.repeats,
                                      args.threads, state_path)
        difference = float(np.max(np.abs(np.array(torch_result["logits"]) - reference_logits)))
        mismatch = torch_result["state_dict_mismatch"]
        rounds = []
        for round_index in range(args.rounds):
            if round_index > 0:            # round 0's PyTorch time is the run above
                torch_result = time_torch(args.torch_python, args.batch, args.warmup,
                                          args.repeats, args.threads, "")
            ours = (results["backends"][fastest] if round_index == 0
                    else time_se_numpy(fastest, args.batch, args.warmup, args.repeats))
            rounds.append({"se_numpy": ours, "torch": torch_result["seconds"],
                           "ratio": ours / torch_result["seconds"],
                           "load_average": os.getloadavg()[0]})
            print(f"round {round_index + 1}: se_numpy[{fastest}] {ours * 1000:7.1f} ms, PyTorch "
                  f"{torch_result['seconds'] * 1000:7.1f} ms, ratio {rounds[-1]['ratio']:.2f}  "
                  f"(load average {rounds[-1]['load_average']:.2f})")
        results["rounds"] = rounds
        results["torch"] = {key: torch_result[key] for key in ("seconds", "torch", "threads")}
        results["torch"]["seconds"] = float(np.median([r["torch"] for r in rounds]))
        results["torch"]["max_logit_difference"] = difference
        results["torch"]["state_dict_mismatch"] = mismatch
        ratio = float(np.median([r["ratio"] for r in rounds]))
        results["ratio_to_torch"] = ratio
        print(f"\nPyTorch {torch_result['torch']} CPU eager ({torch_result['threads']} threads): "
              f"{results['torch']['seconds'] * 1000:.1f} ms per step (median of the rounds)")
        print(f"same architecture check: max |logit difference| = {difference:.2e} "
              f"(state-dict mismatches: {results['torch']['state_dict_mismatch'] or 'none'})")
        print(f"ratio se_numpy[{fastest}] / PyTorch = {ratio:.2f}  (median of {args.rounds} "
              f"alternating rounds; target <= 2)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
