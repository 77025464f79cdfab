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
