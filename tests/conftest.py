"""Test-wide settings: the Hypothesis profile and one BLAS thread per process.

HYPOTHESIS_PROFILE=dev|ci|thorough picks one of the profiles that
``se_numpy.testing`` registers; without it, ``ci`` is used when the variable CI
is set (reproducible runs) and ``dev`` otherwise.

BLAS (OpenBLAS under NumPy) runs on one thread in the tests and in every
process they start (tutorials, ablation workers, CLI runs): the suite runs on
two cores, one pytest worker each (``-n 2``), and OpenBLAS's idle threads spin.
On the shared 2-core machine a training step of se_tiny_resnet cost 0.9-1.4
CPU seconds with OpenBLAS's default two threads and 0.18 with one. No test
relies on BLAS's thread count; the one that checks the convolution's thread
handling sets the count it needs itself.

Under ``-n 2 --dist loadgroup`` (the README's command) the Numba kernels are
compiled first, in two processes (``pytest_sessionstart`` below), then each
test file runs whole on one worker, the memory-heavy files all on the same one,
and the longest units first (``pytest_xdist_make_scheduler`` below).

``python scripts/suite_cost.py`` reports each test file's CPU time and peak
memory, and the whole run's; docs/testing.md has the budget and the numbers.
"""
import os

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # before NumPy loads OpenBLAS; inherited

from hypothesis import settings  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import se_numpy.testing  # noqa: E402,F401  (registers the profiles)

threadpool_limits(1, user_api="blas")      # in case NumPy was loaded before this file

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE",
                                     "ci" if os.environ.get("CI") else "dev"))


def pytest_sessionstart(session):
    """Under pytest-xdist, compile the Numba kernels before the workers start, in two
    processes that share no jitted function (``tests/numba_warm_up.py`` says why both).

    Numba's on-disk cache writes each file atomically, but two processes that
    compile *different* signatures of one function at the same moment can both
    pick the same data-file name, and the index can end up naming the other's
    code. Compiling every kernel of the contract here, on its serial and its
    parallel loops, before the workers exist, leaves them loading the cache
    instead of racing to write it (and compiles each kernel once, not once per
    worker). The two processes are dealt disjoint sets of jitted functions, and
    the split is checked against what each process really compiled.
    """
    config = session.config
    if getattr(config, "workerinput", None) is not None or not config.getoption("numprocesses",
                                                                               None):
        return                          # a worker, or a run without xdist: nothing to share
    import subprocess
    import sys
    warm_up = os.path.join(os.path.dirname(__file__), "numba_warm_up.py")
    # the se_numpy imported here is the one the workers import: the warm-up must use it too
    root = os.path.dirname(os.path.dirname(os.path.abspath(se_numpy.__file__)))
    subprocess.run([sys.executable, warm_up], check=True,     # its memory goes when it ends
                   env=dict(os.environ, SE_NUMPY_WARM_UP_ROOT=root))


# Files whose peak memory is large (ImageNet-size models, pools of training processes, the
# tutorials' runs): under pytest-xdist one worker runs them one after another, in this order,
# so two such peaks never add up, and the largest (SENet-154's 460 MB of weights, held twice
# by test_models_zoo.py) comes first, while that worker holds least.
MEMORY_HEAVY_FILES = ("test_models_zoo.py", "test_counting.py", "test_tutorials.py",
                      "test_ablate.py", "test_cli_train.py")
MEMORY_HEAVY = "memory-heavy files"

# The files that take longest (``python scripts/suite_cost.py``), longest first. A worker
# that starts a long file last keeps the run going while the other idles; starting them
# first leaves the many short files to fill in at the end. The rest follow, most tests first.
LONG_FIRST = (MEMORY_HEAVY, "test_blocks.py", "test_kernels_cuda.py", "test_gradcheck_network.py",
              "test_tutorial_notebooks.py", "test_models.py")


def pytest_collection_modifyitems(config, items):
    """The memory-heavy files in ``MEMORY_HEAVY_FILES`` order, each file's tests in its own."""
    def rank(item):
        name = item.path.name
        return MEMORY_HEAVY_FILES.index(name) if name in MEMORY_HEAVY_FILES else -1
    items.sort(key=rank)          # stable: the other files, and the tests in a file, keep order


def work_unit(nodeid):
    """The unit one worker runs whole: the test's file, or the group of memory-heavy files."""
    file_name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return MEMORY_HEAVY if file_name in MEMORY_HEAVY_FILES else nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)       # a hook of pytest-xdist: unknown to pytest without it
def pytest_xdist_make_scheduler(config, log):
    """Under ``-n N --dist loadgroup``: whole files per worker, memory-heavy ones together.

    pytest-xdist's own ``loadgroup`` reads ``xdist_group`` marks by renaming each
    test, which pytest 9.2 no longer lets it do (the tests of one file then spread
    over both workers, and two memory peaks coincide). Its file scheduler with
    this grouping and order needs no marks.
    """
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FilesLongestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return work_unit(nodeid)

        def _assign_work_unit(self, node):
            """Hand out the longest unit left (LONG_FIRST, then by number of tests)."""
            def rank(unit):
                name = unit.rsplit("/", 1)[-1]
                return (LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST),
                        -len(self.workqueue[unit]))
            self.workqueue.move_to_end(min(self.workqueue, key=rank), last=False)
            super()._assign_work_unit(node)

    return FilesLongestFirst(config, log)
