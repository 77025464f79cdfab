"""Report what each test file costs: CPU seconds (user + system) and peak RSS.

The test suite has a budget (a few minutes on two cores, under 2 GB resident).
Wall time says little on a shared machine, so this counts CPU time, which the
load of other processes barely changes, and the peak resident memory:

    python scripts/suite_cost.py                     # every tests/test_*.py, one process each
    python scripts/suite_cost.py tests/test_conv.py  # some files only
    python scripts/suite_cost.py --whole -- -n 2 --dist loadgroup  # the whole suite as CI runs it, plus pytest args

Each file runs in a pytest process of its own (``CI=true``, so the derandomised
Hypothesis ``ci`` profile), and its cost is read with ``os.wait4``, which
includes the subprocesses the tests start. With ``--whole`` the suite runs as
one command and the peak is the largest *sum* of resident memory over the
process tree (pytest-xdist workers run at the same time), sampled every 0.2 s,
as RSS and as PSS (see ``tree_memory_bytes``).
The per-file numbers include each process's start (Python, NumPy and Numba
imports, about a second), so their sum is more than one run of the suite.
"""
import argparse
import glob
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree_memory_bytes(pid):
    """(RSS, PSS) in bytes of ``pid`` and all its descendants (Linux ``/proc``).

    RSS counts a page shared by several processes (NumPy's and LLVM's libraries,
    which every xdist worker maps) once per process, so the RSS sum overstates
    what the tree holds; PSS divides each shared page among the processes that
    map it, so the PSS sum is the memory the tree really occupies."""
    children = {}
    rss = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                resident_pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = resident_pages * page
    total_rss, total_pss, stack = 0, 0, [pid]
    while stack:
        p = stack.pop()
        total_rss += rss.get(p, 0)
        total_pss += _pss_bytes(p)
        stack.extend(children.get(p, []))
    return total_rss, total_pss


def _pss_bytes(pid):
    """Proportional set size of one process, 0 if it ended or cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run(command, sample_tree=False):
    """Run ``command``; return (exit code, CPU seconds, peak RSS bytes, wall seconds)."""
    environment = dict(os.environ, CI="true")
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak_tree = [0, 0]      # RSS sum, PSS sum
    if sample_tree:
        def sample():
            while process.returncode is None:
                rss, pss = tree_memory_bytes(process.pid)
                peak_tree[0], peak_tree[1] = max(peak_tree[0], rss), max(peak_tree[1], pss)
                time.sleep(0.2)
        threading.Thread(target=sample, daemon=True).start()
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    peak = max(usage.ru_maxrss * 1024, peak_tree[0])  # ru_maxrss is in KiB on Linux
    last = output.decode(errors="replace").strip().splitlines()[-1:] or [""]
    return process.returncode, cpu, peak, wall, last[0], peak_tree[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="test files (default: tests/test_*.py)")
    parser.add_argument("--whole", action="store_true",
                        help="run the whole suite as one pytest command instead")
    parser.add_argument("--sort", choices=["cpu", "rss", "name"], default="cpu")
    argv = sys.argv[1:] if argv is None else list(argv)
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    python = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    print(f"load average at start: {open('/proc/loadavg').read().strip()}")
    if args.whole:
        code, cpu, peak, wall, last, pss = run(python + pytest_args, sample_tree=True)
        print(f"whole suite: {cpu:.1f} CPU s, peak {peak / 2**30:.2f} GiB RSS summed over the "
              f"process tree ({pss / 2**30:.2f} GiB PSS, shared pages counted once), "
              f"{wall:.1f} s wall, exit {code}: {last}")
        print(f"load average at end: {open('/proc/loadavg').read().strip()}")
        return code
    files = args.files or sorted(glob.glob(os.path.join(ROOT, "tests", "test_*.py")))
    rows = []
    for path in files:
        code, cpu, peak, wall, last, _ = run(python + [path] + pytest_args)
        rows.append((os.path.relpath(path, ROOT), cpu, peak, wall, code, last))
        print(f"  {rows[-1][0]:44s} {cpu:7.1f} CPU s {peak / 2**20:7.0f} MiB  {last}",
              file=sys.stderr, flush=True)
    key = {"cpu": lambda r: -r[1], "rss": lambda r: -r[2], "name": lambda r: r[0]}[args.sort]
    print(f"{'file':44s} {'CPU s':>8s} {'peak MiB':>9s} {'wall s':>7s}  result")
    for name, cpu, peak, wall, code, last in sorted(rows, key=key):
        print(f"{name:44s} {cpu:8.1f} {peak / 2**20:9.0f} {wall:7.1f}  {last}")
    print(f"{'total (sum over files)':44s} {sum(r[1] for r in rows):8.1f} "
          f"{max(r[2] for r in rows) / 2**20:9.0f} {sum(r[3] for r in rows):7.1f}")
    print(f"load average at end: {open('/proc/loadavg').read().strip()}")
    return max(r[4] for r in rows)


if __name__ == "__main__":
    sys.exit(main())
