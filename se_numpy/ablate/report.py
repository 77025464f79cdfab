"""The results of an ablation as a text table, a figure with error bars, and summary.json.

Every file is written atomically (a temporary file in the same directory, then
``os.replace``), so an interrupted ablation never leaves half a summary behind.
"""
import json
import os

from ..atomic import atomic_write
from .runs import write_json_atomically
from .stats import SIGNIFICANCE_LEVEL


def _p_text(row):
    if row["baseline"]:
        return "baseline"
    if row["p"] is None:
        return "(1 seed: no test)"
    verdict = "" if row["significant"] else "  n.s."
    return f"p={row['p']:.3f}{verdict}"


def format_table(table):
    """One table as text: variant, params, MFLOPs, error mean ± std, Δ, p, the paper's row."""
    label = f"Table {table['paper_table']} " if table["paper_table"] is not None else ""
    lines = [f"{label}({table['table']}: {table['title']}), "
             f"{table['model']}, {table['seeds']} seeds, test error %"]
    name_width = max(len(row["name"]) for row in table["variants"]) + 2
    header = (f"{'variant':<{name_width}}{'params':>9}{'MFLOPs':>9}{'error %':>16}"
              f"{'Δ vs base':>11}  {'paired t-test':<20}{'paper top-1 %':>14}")
    lines += [header, "-" * len(header)]
    for row in table["variants"]:
        error = f"{row['mean']:.2f} ± {row['std']:.2f}"
        difference = "" if row["baseline"] else f"{row['difference']:+.2f}"
        paper = f"{row['paper_top1']:.2f} (T{row['paper_table']})" if row["paper_top1"] else ""
        lines.append(f"{row['name']:<{name_width}}{row['params']:>9,d}{row['mflops']:>9.2f}"
                     f"{error:>16}{difference:>11}  {_p_text(row):<20}{paper:>14}")
    per_seed = "; ".join(f"{row['name']}: " + ", ".join(f"{e:.2f}" for e in row["test_errors"])
                         for row in table["variants"])
    lines.append(f"per-seed errors (seeds 0..{table['seeds'] - 1}): {per_seed}")
    lines.append(f"n.s. = not significant at p < {SIGNIFICANCE_LEVEL} (paired t-test over "
                 "seeds); paper: SE-ResNet-50 on ImageNet, the table's own baseline; "
                 f"machine time {table['machine_seconds'] / 60:.1f} min")
    return "\n".join(lines)


def plot_table(table, path):
    """Mean error with ±1 std error bars and each seed's error as a dot, one column per variant.

    Points, not bars: a bar from 0 would hide differences of a few tenths of a percent."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table["variants"]
    positions = range(len(rows))
    figure, axis = plt.subplots(figsize=(1.3 * len(rows) + 2.5, 3.6))
    colors = ["tab:orange" if row["baseline"] else "tab:blue" for row in rows]
    for position, row, color in zip(positions, rows, colors):
        axis.errorbar([position], [row["mean"]], yerr=[row["std"]], fmt="o", color=color,
                      capsize=5, markersize=8)
        axis.plot([position + 0.12] * len(row["test_errors"]), row["test_errors"], "k.",
                  markersize=4)
        if not row["baseline"] and row["p"] is not None:
            axis.annotate(f"p={row['p']:.2g}", (position, row["mean"] + row["std"]),
                          textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    axis.set_xlim(-0.5, len(rows) - 0.5)
    axis.set_xticks(list(positions))
    axis.set_xticklabels([row["name"] for row in rows], rotation=20, ha="right", fontsize=8)
    axis.set_ylabel("test error (%)")
    label = f"Table {table['paper_table']}: " if table["paper_table"] is not None else ""
    axis.set_title(f"{label}{table['title']} ({table['model']}, "
                   f"{table['seeds']} seeds; orange = baseline)", fontsize=9)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda stream: figure.savefig(stream, dpi=100, format="png"))
    plt.close(figure)
    return path


def write_report(summary, out_dir, command, budget, wall_seconds, trained, reused):
    """Write summary.json, table.txt and one PNG per table into ``out_dir``; return the paths."""
    os.makedirs(out_dir, exist_ok=True)
    document = {"command": command, "budget": budget, "wall_seconds": wall_seconds,
                "runs_trained": trained, "runs_reused": reused, "tables": summary}
    paths = {"summary": os.path.join(out_dir, "summary.json"),
             "table": os.path.join(out_dir, "table.txt"), "figures": []}
    write_json_atomically(paths["summary"], document)
    text = "\n\n".join(format_table(table) for table in summary.values()) + "\n"
    _write_text(paths["table"], text)
    for key, table in summary.items():
        # one text file and one figure per table too, so that tables run one at a time
        # into the same directory (sharing the baseline runs) each keep their own
        _write_text(os.path.join(out_dir, f"{key}.txt"), format_table(table) + "\n")
        paths["figures"].append(plot_table(table, os.path.join(out_dir, f"{key}.png")))
    return paths, text


def _write_text(path, text):
    atomic_write(path, lambda stream: stream.write(text.encode()))


def load_summary(out_dir):
    """The summary.json of a finished ablation."""
    with open(os.path.join(out_dir, "summary.json")) as handle:
        return json.load(handle)
