"""Compile the Numba kernels before the test workers start, in two processes that cannot race.

Why before: Numba's on-disk cache writes each file atomically, but two
processes that compile *different* signatures of one jitted function at the
same moment can both pick the same data-file name, and the function's index
can end up naming the other's code. Compiling the kernels before the
pytest-xdist workers exist leaves them loading the cache instead of racing to
write it (and compiles each kernel once, not once per worker).

Why two processes: a cold cache costs about 120 CPU seconds of compilation
(every row in float32 and float64, on its serial and its parallel loop), and
one process leaves the second core idle meanwhile. Two processes are safe
when no jitted function is compiled by both, so the contract's rows are
grouped by the jitted functions they can reach:

* ``reachable(function)`` follows, from a row's Python function, every name
  its code (and its nested code) reads, through the globals of its module and
  the modules it names, to every Numba dispatcher it can call, and from each
  dispatcher on through its own Python source: an over-approximation of the
  functions a call can compile (a jitted callee is compiled, and cached, by
  its caller's compilation);
* rows that can reach a common dispatcher are joined into one component
  (``components``); a process compiles whole components only, so two
  processes' sets of reachable dispatchers are disjoint by construction;
* the processes take the components one at a time, the costliest first
  (``compile_weight``), each claimed by creating a file exclusively
  (``warm_up_claimed``): whichever process is free takes the next one, so
  neither idles while the other still has several to compile;
* each process then lists the dispatchers it actually wrote to the cache
  (``compiled_here``), and ``warm_up_in_processes`` raises if any was written
  by both or lies outside the reachable sets of the components it claimed:
  that would mean the analysis missed a path, and is reported, not trusted.

Its cost: the analysis reads code objects only (milliseconds); a row whose
kernels share a helper with another row's is compiled in the same process,
so the balance is only as fine as the components (the largest, batch norm's
backward rows, is about an eighth of the weight). docs/testing.md has the
measurements.
"""
import collections
import json
import os
import subprocess
import sys
import types

import numpy as np
from numba.core.registry import CPUDispatcher

# Compile into the cache of the se_numpy the test workers import, in every process:
# the conftest names its folder here. Without it, "python tests/numba_warm_up.py"
# would import an installed copy (sys.path starts at tests/) and a "python -c" child
# the one under its working directory: two copies, two caches, and the check below
# would see each process compile functions the other's analysis does not know.
ROOT = os.environ.get("SE_NUMPY_WARM_UP_ROOT")
if ROOT:
    sys.path.insert(0, ROOT)

import se_numpy  # noqa: E402
from se_numpy.kernels import contract  # noqa: E402
from se_numpy.kernels import numba as backend  # noqa: E402

if ROOT and not os.path.abspath(se_numpy.__file__).startswith(os.path.abspath(ROOT) + os.sep):
    raise RuntimeError(f"numba warm-up: imported se_numpy from {se_numpy.__file__}, "
                       f"expected the copy under {ROOT}")

PACKAGE = "se_numpy."
DTYPES = (np.float32, np.float64)


def _names(code):
    """Every global or attribute name ``code`` and the code objects nested in it read."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _names(constant)
    return names


def _python_functions(value):
    """The Python functions behind ``value`` (a function, a dispatcher, a serial/parallel pair)."""
    if isinstance(value, CPUDispatcher):
        return [value.py_func]
    if isinstance(value, types.FunctionType):
        return [value]
    pair = [getattr(value, "serial", None), getattr(value, "parallel", None)]
    if all(isinstance(p, CPUDispatcher) for p in pair):
        return [p.py_func for p in pair]
    return []


def reachable(function):
    """The dispatchers (keyed by cache index path) that calling ``function`` can compile."""
    found, seen, stack = {}, set(), list(_python_functions(function))
    while stack:
        python = stack.pop()
        if id(python) in seen or not python.__module__.startswith(PACKAGE):
            continue
        seen.add(id(python))
        names = _names(python.__code__)
        namespace = dict(python.__globals__)
        for cell_name, cell in zip(python.__code__.co_freevars, python.__closure__ or ()):
            namespace[cell_name] = cell.cell_contents
        values = [namespace[name] for name in names if name in namespace]
        # a module it names: any attribute of it that the code also names (over-approximate)
        for module in [v for v in values if isinstance(v, types.ModuleType)]:
            values += [getattr(module, name) for name in names if hasattr(module, name)]
        for value in values:
            for dispatcher in _dispatchers(value):
                found[_index_path(dispatcher)] = dispatcher
            stack += _python_functions(value)
    return found


def _dispatchers(value):
    if isinstance(value, CPUDispatcher):
        return [value]
    pair = [getattr(value, "serial", None), getattr(value, "parallel", None)]
    return [p for p in pair if isinstance(p, CPUDispatcher)]


def _index_path(dispatcher):
    """The cache index file of ``dispatcher``: two dispatchers that share it share an entry."""
    cache = dispatcher._cache
    path = getattr(getattr(cache, "_cache_file", None), "_index_path", None)
    return path or f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"


def components(rows=None):
    """The contract's rows in groups that share no reachable dispatcher, each with its set."""
    rows = [op.name for op in contract.CONTRACT] if rows is None else list(rows)
    groups = []                                   # [(row names, {index path: dispatcher})]
    for row in rows:
        mine = ([row], reachable(getattr(backend, row).__wrapped__))
        for group in [g for g in groups if g[1].keys() & mine[1].keys()]:
            groups.remove(group)
            mine = (group[0] + mine[0], {**group[1], **mine[1]})
        groups.append(mine)
    return groups


# A parallel loop (``parallel=True``) takes about four times as long to compile as a
# serial one (Numba's parfor passes; measured in docs/testing.md): the weights that deal
# the components evenly.
PARALLEL_WEIGHT, SERIAL_WEIGHT = 4, 1


def compile_weight(dispatchers):
    """Rough compile cost of a set of dispatchers, in serial-loop units."""
    return sum(PARALLEL_WEIGHT if d.targetoptions.get("parallel") else SERIAL_WEIGHT
               for d in dispatchers.values())


def ordered_components():
    """The components as lists of row names, the costliest first (the order they are claimed)."""
    groups = sorted(components(), key=lambda g: (-compile_weight(g[1]), g[0][0]))
    return [names for names, _ in groups]


def split(parts=2):
    """What a greedy deal of the components would give ``parts`` processes, the costliest
    first to the least loaded: [(row names, {index path: dispatcher})], pairwise disjoint.
    (The warm-up itself deals them at run time, ``warm_up_claimed``; this shows the idea.)"""
    shares = [([], {}) for _ in range(parts)]
    reach = dict((tuple(names), dispatchers) for names, dispatchers in components())
    for names in ordered_components():
        rows, owned = min(shares, key=lambda share: compile_weight(share[1]))
        rows.extend(names)
        owned.update(reach[tuple(names)])
    return [share for share in shares if share[0]]


def compiled_here():
    """Index paths of the se_numpy dispatchers this process compiled (rather than loaded)."""
    written = set()
    for module in list(sys.modules.values()):
        if not getattr(module, "__name__", "").startswith(PACKAGE):
            continue
        for value in list(vars(module).values()):
            for dispatcher in _dispatchers(value):
                if any(dispatcher._cache_misses.values()):
                    written.add(_index_path(dispatcher))
    return written


def warm_up_rows(rows, dtypes=DTYPES, shape=(1, 2, 4, 4)):
    """Call each of ``rows``' kernels once per dtype on the serial and on the parallel loops
    (``rows.PARALLEL_MIN_ELEMENTS`` moved as the tests move it): compiles or loads the cache."""
    from se_numpy.kernels.numba import rows as row_loops
    saved = row_loops.PARALLEL_MIN_ELEMENTS
    try:
        for threshold in (2 ** 62, 0):                 # serial, then parallel
            row_loops.PARALLEL_MIN_ELEMENTS = threshold
            for dtype in dtypes:
                for row in rows:
                    getattr(backend, row)(*contract.example_arguments(row, shape, dtype))
    finally:
        row_loops.PARALLEL_MIN_ELEMENTS = saved


def warm_up_claimed(groups, claims):
    """Warm up every group of rows this process claims first: a group is claimed by
    creating ``claims/<its index>`` exclusively (``O_EXCL``), so exactly one process
    compiles it, and the processes share the groups out as they finish them."""
    import os
    mine = []
    for index, rows in enumerate(groups):
        try:
            os.close(os.open(os.path.join(claims, str(index)), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            continue                      # another process has it
        warm_up_rows(rows)
        mine.append(index)
    return mine


_CHILD = """
import json, os, sys
sys.path.insert(0, {tests!r})
import numba_warm_up
mine = numba_warm_up.warm_up_claimed({groups!r}, {claims!r})
times = os.times()
print(json.dumps([times.user + times.system, mine, sorted(numba_warm_up.compiled_here())]))
"""


def warm_up_in_processes(parts=2):
    """Compile every contract row in ``parts`` processes at once (this one and parts − 1
    children), none sharing a jitted function: [(rows, compiled index paths, CPU s)].

    Raises ``RuntimeError`` if a process compiled a dispatcher outside the reachable sets
    of the groups it claimed, or one that another process compiled too (the analysis
    would then be unsound)."""
    import os
    import tempfile
    tests = os.path.dirname(os.path.abspath(__file__))
    reach = {tuple(names): dispatchers for names, dispatchers in components()}
    groups = ordered_components()
    with tempfile.TemporaryDirectory(prefix="numba-warm-up-") as claims:
        code = _CHILD.format(tests=tests, groups=groups, claims=claims)
        children = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                     text=True) for _ in range(parts - 1)]
        mine = warm_up_claimed(groups, claims)
        times = os.times()
        results = [(times.user + times.system, mine, sorted(compiled_here()))]
        for child in children:
            output, _ = child.communicate()
            if child.returncode:
                raise RuntimeError(f"a Numba warm-up process failed (exit {child.returncode})")
            results.append(json.loads(output.strip().splitlines()[-1]))
    report = []
    for cpu, claimed, compiled in results:
        rows = [row for index in claimed for row in groups[index]]
        owned = set().union(*(reach[tuple(groups[index])] for index in claimed))
        unforeseen = set(compiled) - owned
        if unforeseen:
            raise RuntimeError(f"warming up {rows} compiled {sorted(unforeseen)}, "
                               f"which tests/numba_warm_up.py did not find reachable")
        report.append((rows, compiled, cpu))
    counts = collections.Counter(path for _, compiled, _ in report for path in compiled)
    shared = sorted(path for path, count in counts.items() if count > 1)
    if shared:
        raise RuntimeError(f"two warm-up processes both compiled {shared}")
    return report


if __name__ == "__main__":
    # python tests/numba_warm_up.py           compile, and say what each process compiled
    # python tests/numba_warm_up.py --split   only show the split
    if sys.argv[1:] == ["--split"]:
        for rows, owned in split():
            print(f"{len(owned):3d} dispatchers, weight {compile_weight(owned)}: "
                  f"{' '.join(rows)}")
    else:
        for rows, compiled, cpu in warm_up_in_processes():
            print(f"numba warm-up: {len(rows)} rows, {len(compiled)} functions compiled here, "
                  f"{cpu:.1f} CPU s")
