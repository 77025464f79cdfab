"""Turn a benchmark result into a text table, a JSON file and a bar chart (written atomically)."""
import json
import os

from ..atomic import atomic_write

BACKEND_ORDER = ("numpy", "numba", "cuda", "torch")


def _backends_in(rows):
    present = {backend for row in rows for backend in row["results"]}
    return [b for b in BACKEND_ORDER if b in present] + sorted(present - set(BACKEND_ORDER))


def format_table(result):
    """A plain-text summary: bandwidth, per-kernel fraction of it, SE block vs the 7-pass bound."""
    memory = result["memory"]
    lines = [f"copy bandwidth {memory['copy_GBps']:.1f} GB/s (np.copyto {memory['numpy_copyto_GBps']:.1f}, "
             f"parallel numba copy {memory['numba_parallel_copy_GBps']:.1f}; read {memory['read_GBps']:.1f})"]
    for entry in result["shapes"]:
        backends = _backends_in(entry["kernels"])
        lines.append("")
        lines.append(f"shape {tuple(entry['shape'])} {entry['dtype']}   "
                     "ms (fraction of copy bandwidth)")
        header = f"{'kernel':<26}{'MB':>8}" + "".join(f"{b:>18}" for b in backends)
        lines.append(header)
        lines.append("-" * len(header))
        for row in entry["kernels"]:
            cells = []
            for backend in backends:
                rates = row["results"].get(backend)
                cells.append(f"{rates['seconds'] * 1e3:>10.2f} ({rates['fraction_of_bandwidth']:.2f})"
                             if rates else f"{'-':>18}")
            lines.append(f"{row['kernel']:<26}{row['min_bytes'] / 1e6:>8.1f}" + "".join(cells))
        block = entry.get("se_block")
        if block is None:             # a run limited to some kernels
            continue
        lines.append(f"SE block forward+backward: 7-pass bound {block['bound_seconds'] * 1e3:.2f} ms")
        for backend, timing in block["results"].items():
            lines.append(f"  {backend:<8}{timing['seconds'] * 1e3:>10.2f} ms  "
                         f"= {timing['times_bound']:.2f} x bound")
        speedups = block.get("numba_speedup", {})
        for other, ratio in speedups.items():
            lines.append(f"  numba is {ratio:.2f}x faster than {other}")
        if entry.get("progression"):
            lines.append("progression (kernels/numba/naive.py -> se.py):")
            for step in entry["progression"]:
                lines.append(f"  {step['step']:<58}{step['seconds'] * 1e3:>10.2f} ms "
                             f"({step['fraction_of_bandwidth']:.2f})")
    return "\n".join(lines)


def write_json(result, path):
    atomic_write(path, lambda handle: handle.write(json.dumps(result, indent=2).encode()))


def write_chart(result, path):
    """Grouped bars: fraction of the copy bandwidth per kernel and backend, one panel per shape."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = result["shapes"]
    figure, axes = plt.subplots(len(entries), 1, figsize=(13, 4.2 * len(entries)), squeeze=False)
    for axis, entry in zip(axes[:, 0], entries):
        rows = entry["kernels"] + ([_se_block_as_row(entry)] if "se_block" in entry else [])
        backends = _backends_in(rows)
        width = 0.8 / len(backends)
        for offset, backend in enumerate(backends):
            heights = [row["results"].get(backend, {}).get("fraction_of_bandwidth", 0) for row in rows]
            positions = [i + (offset - (len(backends) - 1) / 2) * width for i in range(len(rows))]
            axis.bar(positions, heights, width, label=backend)
        axis.axhline(1.0, color="black", linewidth=1, linestyle="--")
        axis.set_xticks(range(len(rows)))
        axis.set_xticklabels([row["kernel"] for row in rows], rotation=35, ha="right", fontsize=9)
        axis.set_ylabel("fraction of copy bandwidth")
        axis.set_title(f"{tuple(entry['shape'])} {entry['dtype']}", fontsize=10)
        axis.legend(fontsize=9)
    figure.suptitle("SE kernels are memory-bound: how close does each backend get to the copy "
                    f"bandwidth ({result['memory']['copy_GBps']:.1f} GB/s, dashed line)?\n"
                    "Higher is better. Above 1: the data fit in cache, or the kernel only reads (a copy also writes).", fontsize=11)
    figure.tight_layout()
    atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
    plt.close(figure)


def _se_block_as_row(entry):
    """The SE block as a chart bar: 7-pass bound / time = its fraction of the bandwidth."""
    block = entry["se_block"]
    return {"kernel": "SE block fwd+bwd (7 passes)",
            "results": {backend: {"fraction_of_bandwidth": 1 / timing["times_bound"]}
                        for backend, timing in block["results"].items()}}
