"""Report what each test file costs: CPU seconds (user + system) and peak RSS.

The test suite has a budget (a few minutes on two cores, under 2 GB resident).
Wall time says little on a shared machine, so this counts CPU time, which the
load of other processes barely changes, and the peak resident memory:

    python scripts/suite_cost.py                     # every tests/test_*.py, one process each
    python scripts/suite_cost.py tests/test_conv.py  # some files only
    python scripts/suite_cost.py --whole -- -n 2 --dist loadgroup  # the whole suite as CI runs it, plus pytest args
    python scripts/suite_cost.py --whole --trace trace.tsv -- -n 2 --dist loadgroup  # and which tests make the peak

Each file runs in a pytest process of its own (``CI=true``, so the derandomised
Hypothesis ``ci`` profile), and its cost is read with ``os.wait4``, which
includes the subprocesses the tests start. With ``--whole`` the suite runs as
one command and the peak is the largest *sum* of resident memory over the
process tree (pytest-xdist workers run at the same time), sampled every 0.2 s,
as RSS and as PSS (see ``tree_memory_bytes``). ``--trace FILE`` also logs, at
each sample, every worker's PSS (with its subprocesses) and the test it is in
(``scripts/suite_trace.py`` reports that from inside each worker), and prints
the tests at the peak, each worker's memory before its first test, and the
tests that raised their worker's memory most.
The per-file numbers include each process's start (Python, NumPy and Numba
imports, about a second), so their sum is more than one run of the suite.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree_memory_bytes(pid, per_child=False):
    """(RSS, PSS) in bytes of ``pid`` and all its descendants (Linux ``/proc``).

    RSS counts a page shared by several processes (NumPy's and LLVM's libraries,
    which every xdist worker maps) once per process, so the RSS sum overstates
    what the tree holds; PSS divides each shared page among the processes that
    map it, so the PSS sum is the memory the tree really occupies.
    With ``per_child``, also {child pid: PSS of that child's own tree}: under
    pytest-xdist the children of pytest are its workers."""
    children = _children_by_parent()
    rss = _rss_by_pid()
    def tree(root):
        total_rss, total_pss, stack = 0, 0, [root]
        while stack:
            p = stack.pop()
            total_rss += rss.get(p, 0)
            total_pss += _pss_bytes(p)
            stack.extend(children.get(p, []))
        return total_rss, total_pss
    if not per_child:
        return tree(pid)
    total_rss, total_pss = rss.get(pid, 0), _pss_bytes(pid)
    workers = {}
    for child in children.get(pid, []):
        child_rss, workers[child] = tree(child)
        total_rss, total_pss = total_rss + child_rss, total_pss + workers[child]
    return total_rss, total_pss, workers


def _children_by_parent():
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # the process ended while we looked
            children.setdefault(parent, []).append(int(entry))
    return children


def _rss_by_pid():
    page, rss = os.sysconf("SC_PAGE_SIZE"), {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/statm") as f:
                    rss[int(entry)] = int(f.read().split()[1]) * page
            except (OSError, IndexError, ValueError):
                continue
    return rss


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


def run(command, sample_tree=False, trace=None):
    """Run ``command``; return (exit code, CPU seconds, peak RSS bytes, wall seconds,
    last output line, peak PSS bytes). With ``trace`` (a file name), log each
    sample of the process tree with the test each worker is in (see ``summarise_trace``)."""
    environment = dict(os.environ, CI="true")
    trace_directory = None
    if trace:
        trace_directory = tempfile.mkdtemp(prefix="suite-trace-")
        scripts = os.path.join(ROOT, "scripts")
        environment["SUITE_TRACE_DIR"] = trace_directory
        environment["PYTHONPATH"] = os.pathsep.join(
            [scripts] + [p for p in [environment.get("PYTHONPATH")] if p])
        command = command + ["-p", "suite_trace"]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak_tree = [0, 0]      # RSS sum, PSS sum
    samples = []            # (seconds, RSS sum, PSS sum, {worker pid: (PSS, test)})
    if sample_tree:
        def sample():
            while process.returncode is None:
                if trace:
                    rss, pss, workers = tree_memory_bytes(process.pid, per_child=True)
                    samples.append((time.perf_counter() - start, rss, pss,
                                    {w: (m, _current_test(trace_directory, w))
                                     for w, m in workers.items()}))
                else:
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
    if trace:
        time.sleep(0.3)                                # let the sampler's last pass end
        with open(trace + ".log", "wb") as f:          # pytest's own output, for the failures
            f.write(output)
        write_trace(trace, samples)
        summarise_trace(samples)
        summarise_compilations(trace_directory, trace + ".compile.tsv")
        shutil.rmtree(trace_directory, ignore_errors=True)
    return process.returncode, cpu, peak, wall, last[0], peak_tree[1]


def _current_test(directory, pid):
    """The test the worker ``pid`` said it is in (``suite_trace.py``), or ``-``."""
    try:
        with open(os.path.join(directory, str(pid))) as f:
            return f.read().strip() or "-"
    except OSError:
        return "-"


def write_trace(path, samples):
    """One line per sample: seconds, RSS sum, PSS sum (MiB), then per worker ``pid PSS test``."""
    with open(path, "w") as f:
        f.write("seconds\trss_mib\tpss_mib\tworkers (pid pss_mib test; ...)\n")
        for seconds, rss, pss, workers in samples:
            described = "; ".join(f"{w} {m / 2**20:.0f} {test}"
                                  for w, (m, test) in sorted(workers.items()))
            f.write(f"{seconds:.1f}\t{rss / 2**20:.0f}\t{pss / 2**20:.0f}\t{described}\n")


def summarise_trace(samples, top=15):
    """Print the tests at the PSS peak, each worker's PSS before its first test (its
    imports, collection and compiled kernels), and the tests with the largest worker PSS."""
    if not samples:
        return
    seconds, rss, pss, workers = max(samples, key=lambda s: s[2])
    print(f"PSS peak {pss / 2**20:.0f} MiB (RSS sum {rss / 2**20:.0f} MiB) at {seconds:.0f} s:")
    for w, (m, test) in sorted(workers.items()):
        print(f"  worker {w}: {m / 2**20:6.0f} MiB in {test}")
    first_test = {}
    highest = {}          # test (setup/teardown folded in) -> (its worker's highest PSS, pid)
    for seconds, _, _, workers in samples:
        for w, (m, test) in workers.items():
            if test != "-" and w not in first_test:
                first_test[w] = (m, test)
            name = test.split(" [")[0]
            if name != "-" and m > highest.get(name, (0, 0))[0]:
                highest[name] = (m, w)
    for w, (m, test) in sorted(first_test.items()):
        print(f"  worker {w} held {m / 2**20:.0f} MiB when its first test began ({test})")
    print(f"tests by the highest PSS of their worker while they ran (top {top}):")
    for name, (m, w) in sorted(highest.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {m / 2**20:6.0f} MiB  worker {w}  {name}")


def summarise_compilations(directory, path, top=15):
    """Gather the processes' Numba compilations (``suite_trace.py``) into ``path`` and print
    each process's CPU seconds and compile seconds, and the kernels that took longest."""
    rows, per_process = [], {}
    for name in sorted(glob.glob(os.path.join(directory, "*.compile.tsv"))):
        pid = os.path.basename(name).split(".")[0]
        with open(name) as f:
            cpu = float(f.readline().split()[-1])
            lines = [line.rstrip("\n").split("\t") for line in f]
        rows += [[pid] + line for line in lines]
        per_process[pid] = (cpu, sum(float(line[0]) for line in lines), len(lines))
    if not per_process:
        return
    with open(path, "w") as f:
        f.write("pid\tcompile_s\tfunction\targuments\ttest\n")
        f.writelines("\t".join(row) + "\n" for row in rows)
    for pid, (cpu, compiling, count) in sorted(per_process.items()):
        print(f"  process {pid}: {cpu:.1f} CPU s, of which {compiling:.1f} s compiling "
              f"{count} Numba signatures")
    by_function = {}
    for pid, seconds, function, _, _ in rows:
        by_function[function] = by_function.get(function, 0.0) + float(seconds)
    print(f"Numba compile seconds by function, over all processes (top {top}; all in {path}):")
    for function, seconds in sorted(by_function.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {seconds:6.1f} s  {function}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="test files (default: tests/test_*.py)")
    parser.add_argument("--whole", action="store_true",
                        help="run the whole suite as one pytest command instead")
    parser.add_argument("--trace", metavar="FILE",
                        help="with --whole: log each worker's memory and current test to FILE "
                             "(and pytest's output to FILE.log)")
    parser.add_argument("--sort", choices=["cpu", "rss", "name"], default="cpu")
    argv = sys.argv[1:] if argv is None else list(argv)
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    python = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    print(f"load average at start: {open('/proc/loadavg').read().strip()}")
    if args.whole:
        code, cpu, peak, wall, last, pss = run(python + pytest_args, sample_tree=True,
                                               trace=args.trace)
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
