"""How the cost grows with the work: SE-kernel GB/s against working-set size, step time against
batch and image size.

    python benchmarks/bench_scaling.py --threads 2 --torch-python /work/torchvenv/bin/python
    python benchmarks/bench_scaling.py --only bandwidth          # (a) only; --only steps: (b)

(a) **Bandwidth against working set.** The squeeze (reads x), the scale
(reads x, writes y), the SE block forward + backward (the library's
``se_block_forward``/``se_block_backward``: 7 passes over an x-sized array)
and ``np.copyto`` on x of (N, 64, 8, 8) float32 maps, N = 1 ... 2^14 (16 kB
to 256 MB per array). GB/s = the bytes the kernel must move
(``contract.minimum_bytes``; 7·bytes(x) for the block) / the best time; the
working set is the bytes of the distinct full maps it touches (x; x and y;
x, y, dy and dx). The L1d, L2 and L3 sizes read from
``/sys/devices/system/cpu/cpu0/cache`` are drawn as vertical lines.

(b) **Train-step time against batch and image size.** One SGD step of
SE-ResNet-20 (``bench_train_step.py``'s step, float32) at batch 1 ... 256 on
32×32 images, and at image side 32 ... 224 on batch 4, for se_numpy's numba
backend and, given ``--torch-python``, for PyTorch eager on the same threads
(alternating: se_numpy then PyTorch for each point). Plotted as time per
image, so a flat line is linear growth.

Writes ``scaling.json`` and ``scaling_bandwidth.png``, ``scaling_steps.png``
into ``--out`` (atomically). Several minutes on 2 cores: keep ``--repeats`` small.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import same_threads  # noqa: E402  (before se_numpy: it keeps the starting environment)
import bench_train_step as train_step  # noqa: E402  (the step and the PyTorch runner)

CHANNELS, SIDE = 64, 8                              # one sample of x: 16 kB in float32
BATCHES = (1, 4, 16, 64, 256)
IMAGE_SIDES = (32, 64, 112, 224)
IMAGE_SIDE_BATCH = 4


def cache_sizes():
    """{"L1d": bytes, "L2": bytes, "L3": bytes} of CPU 0, as Linux reports them (may be empty)."""
    sizes = {}
    root = "/sys/devices/system/cpu/cpu0/cache"
    for index in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        def read(name):
            with open(os.path.join(root, index, name)) as handle:
                return handle.read().strip()
        try:
            level, kind, size = read("level"), read("type"), read("size")
        except OSError:
            continue
        if kind == "Instruction":
            continue
        units = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}
        value = int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
        sizes[f"L{level}d" if level == "1" else f"L{level}"] = value
    return sizes


def bandwidth_sweep(repeats, max_samples=2 ** 14):
    """[(kernel, working-set bytes, GB/s)] for the SE kernels and a copy, growing N."""
    from se_numpy.bench.cpu import se_block_forward_backward, se_parameters, SE_BLOCK_PASSES
    from se_numpy.bench.memory import GB, best_time
    from se_numpy.kernels import contract
    from se_numpy.kernels import numba as kernels

    params = se_parameters(CHANNELS)
    rows = []
    samples = 1
    while samples <= max_samples:
        shape = (samples, CHANNELS, SIDE, SIDE)
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape, dtype=np.float32)
        dy = rng.standard_normal(shape, dtype=np.float32)
        s = rng.uniform(0.5, 1.5, size=shape[:2]).astype(np.float32)
        copy_target = np.empty_like(x)
        cases = (
            ("squeeze_forward", lambda: kernels.squeeze_forward(x), x.nbytes,
             contract.minimum_bytes("squeeze_forward", shape, 4)),
            ("scale_forward", lambda: kernels.scale_forward(x, s), 2 * x.nbytes,
             contract.minimum_bytes("scale_forward", shape, 4)),
            ("se_block fwd+bwd", lambda: se_block_forward_backward("numba", x, dy, params),
             4 * x.nbytes, SE_BLOCK_PASSES * x.nbytes),
            ("np.copyto", lambda: np.copyto(copy_target, x), 2 * x.nbytes, 2 * x.nbytes),
        )
        for name, function, working_set, moved in cases:
            seconds = best_time(function, repeats)
            rows.append({"kernel": name, "working_set": working_set, "GBps": moved / seconds / GB})
        print(f"  N = {samples:5d} ({x.nbytes / 2 ** 20:8.3f} MB per map): " + ", ".join(
            f"{row['kernel']} {row['GBps']:.1f}" for row in rows[-len(cases):]) + " GB/s")
        samples *= 2
    return rows


def step_sweep(args):
    """[{"axis", "value", "se_numpy", "torch"}] seconds per step along batch and image side."""
    points = [("batch", batch, batch, 32) for batch in BATCHES]
    points += [("image side", side, IMAGE_SIDE_BATCH, side) for side in IMAGE_SIDES]
    rows = []
    for axis, value, batch, side in points:
        image = (3, side, side)
        ours = train_step.time_se_numpy("numba", batch, 1, args.repeats, image=image)
        theirs = None
        if args.torch_python:
            theirs = train_step.time_torch(args.torch_python, batch, 1, args.repeats,
                                           args.threads, "", image=image)["seconds"]
        rows.append({"axis": axis, "value": value, "batch": batch, "side": side,
                     "se_numpy": ours, "torch": theirs, "load_average": os.getloadavg()[0]})
        torch_text = f", PyTorch {theirs * 1000:8.1f} ms" if theirs else ""
        print(f"  {axis} {value:4d} (batch {batch}, {side}x{side}): se_numpy {ours * 1000:8.1f} ms"
              f"{torch_text}  (load average {rows[-1]['load_average']:.2f})")
    return rows


def plot_bandwidth(rows, caches, path):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for kernel in dict.fromkeys(row["kernel"] for row in rows):
        mine = [row for row in rows if row["kernel"] == kernel]
        axes.plot([r["working_set"] for r in mine], [r["GBps"] for r in mine], "o-",
                  label=kernel, markersize=3)
    for name, size in caches.items():
        axes.axvline(size, color="grey", linestyle=":")
        axes.text(size, max(row["GBps"] for row in rows), f" {name}", va="top", color="grey")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("working set (bytes of the full maps touched)")
    axes.set_ylabel("GB/s (minimum bytes / best time)")
    axes.legend(fontsize=8)
    _save(figure, path)


def plot_steps(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    figure, panels = plt.subplots(1, 2, figsize=(9, 3.8))
    for panel, axis in zip(panels, ("batch", "image side")):
        mine = [row for row in rows if row["axis"] == axis]
        per_image = [r["batch"] * (r["side"] / 32) ** 2 for r in mine]   # in 32x32-image units
        for key, label in (("se_numpy", "se_numpy (numba)"), ("torch", "PyTorch eager")):
            if all(r[key] for r in mine):
                panel.plot([r["value"] for r in mine],
                           [r[key] / units * 1000 for r, units in zip(mine, per_image)], "o-",
                           label=label)
        panel.set_xscale("log", base=2)
        panel.set_yscale("log")
        panel.set_xlabel(axis + (" (32x32)" if axis == "batch" else f" (batch {IMAGE_SIDE_BATCH})"))
        panel.set_ylabel("ms per 32x32-image equivalent")
        panel.legend(fontsize=8)
    figure.suptitle("SE-ResNet-20 train step, float32")
    _save(figure, path)


def _save(figure, path):
    from se_numpy.atomic import atomic_write_named
    figure.tight_layout()
    atomic_write_named(path, lambda name: figure.savefig(name, dpi=110, format="png"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--torch-python", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("bandwidth", "steps"), default=None)
    parser.add_argument("--out", default="bench_out")
    args = parser.parse_args(argv)
    same_threads.set_se_numpy_threads(args.threads)
    from se_numpy.atomic import atomic_write

    os.makedirs(args.out, exist_ok=True)
    result = {"threads": args.threads, "caches": cache_sizes(),
              "load_average_start": os.getloadavg()[0]}
    print(f"caches: {result['caches']}, load average {result['load_average_start']:.2f}")
    if args.only in (None, "bandwidth"):
        result["bandwidth"] = bandwidth_sweep(args.repeats)
        plot_bandwidth(result["bandwidth"], result["caches"],
                       os.path.join(args.out, "scaling_bandwidth.png"))
    if args.only in (None, "steps"):
        result["steps"] = step_sweep(args)
        plot_steps(result["steps"], os.path.join(args.out, "scaling_steps.png"))
    result["load_average_end"] = os.getloadavg()[0]
    atomic_write(os.path.join(args.out, "scaling.json"),
                 lambda stream: stream.write(json.dumps(result, indent=1).encode()))
    print(f"wrote {args.out}/scaling.json and the figures (load average at the end "
          f"{result['load_average_end']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
