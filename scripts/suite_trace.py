"""pytest plugin for ``suite_cost.py --trace``: each process writes the test it is running.

Loaded with ``-p suite_trace`` (``scripts/`` on ``PYTHONPATH``), it writes the
node id of the test a process is in to ``$SUITE_TRACE_DIR/<pid>`` at each
test's start, setup, call and teardown, and ``-`` between tests. pytest-xdist
passes ``-p`` to its workers, so each worker writes its own file; the sampler in
``suite_cost.py`` reads them beside each worker's memory, which attributes a
peak to the pair of tests that were running on the two workers when it came.
"""
import os

_DIRECTORY = os.environ.get("SUITE_TRACE_DIR")


def _write(text):
    if not _DIRECTORY:
        return
    path = os.path.join(_DIRECTORY, str(os.getpid()))
    with open(path + ".tmp", "w") as f:        # written whole, then renamed: never read half
        f.write(text)
    os.replace(path + ".tmp", path)


def pytest_runtest_setup(item):
    _write(f"{item.nodeid} [setup]")


def pytest_runtest_call(item):
    _write(item.nodeid)


def pytest_runtest_teardown(item):
    _write(f"{item.nodeid} [teardown]")


def pytest_runtest_logfinish(nodeid):
    _write("-")


# ---------------------------------------------------------------------- Numba compilations
# With ``SUITE_TRACE_DIR`` set, each process also records every Numba compilation it does
# (``numba:compile`` events, outermost only: a callee's time is inside its caller's) with
# the test that caused it, and its own CPU seconds at the end, in ``<pid>.compile.tsv``:
# what a cold cache costs each worker, and which kernels and tests make that cost.
_compilations = []        # (CPU seconds, dispatcher, argument types, test)
_current = ["-"]


def pytest_configure(config):
    if not _DIRECTORY:
        return
    import time
    from numba.core import event

    class CompileListener(event.Listener):
        depth = 0

        def on_start(self, e):
            if self.depth == 0:
                self.started = time.process_time()
            self.depth += 1

        def on_end(self, e):
            self.depth -= 1
            if self.depth == 0:
                function = e.data["dispatcher"].py_func
                _compilations.append((time.process_time() - self.started,
                                      f"{function.__module__}.{function.__qualname__}",
                                      str(e.data["args"]), _current[0]))

    event.register("numba:compile", CompileListener())


def pytest_runtest_logstart(nodeid, location):
    _current[0] = nodeid


def pytest_unconfigure(config):
    if not _DIRECTORY:
        return
    times = os.times()
    path = os.path.join(_DIRECTORY, f"{os.getpid()}.compile.tsv")
    with open(path, "w") as f:
        f.write(f"# cpu_seconds {times.user + times.system:.2f}\n")
        for seconds, function, arguments, test in _compilations:
            f.write(f"{seconds:.3f}\t{function}\t{arguments}\t{test}\n")
