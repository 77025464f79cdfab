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

``python scripts/suite_cost.py`` reports each test file's CPU time and peak memory.
"""
import copy
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
    """Under pytest-xdist, compile the Numba kernels once before the workers start.

    Numba's on-disk cache writes each file atomically, but two processes that
    compile *different* signatures of one function at the same moment can both
    pick the same data-file name, and the index can end up naming the other's
    code. Compiling every kernel of the contract here, in one process, before
    the workers exist, leaves them loading the cache instead of racing to
    write it (and compiles each kernel once, not once per worker).
    """
    config = session.config
    if getattr(config, "workerinput", None) is not None or not config.getoption("numprocesses",
                                                                               None):
        return                          # a worker, or a run without xdist: nothing to share
    import subprocess
    import sys
    warm = ("from se_numpy.kernels import contract, numba as backend; "
            "contract.warm_up(backend)")
    subprocess.run([sys.executable, "-c", warm], check=True)   # its memory goes when it ends


@pytest.fixture(scope="module")
def synthetic_data_made_once():
    """``load_dataset("synthetic:SEED")`` makes each seed's 10 000 images once in this module.

    Making them costs 3 CPU seconds, and a test of the CLI or of the ablation
    runner loads them for every command it runs. Each caller gets its own copy,
    so what one run does to its data cannot reach the next. For tests of what
    uses the data, not of the generator (that is ``test_data_synthetic.py``);
    runs in other processes (pool workers) still make their own.
    """
    from se_numpy.data import registry
    made = {}
    original = registry.make_synthetic

    def made_once(seed=0):
        if seed not in made:
            made[seed] = original(seed)
        return copy.deepcopy(made[seed])

    patch = pytest.MonkeyPatch()
    patch.setattr(registry, "make_synthetic", made_once)
    yield
    patch.undo()


# Files whose peak memory is large (ImageNet-size models, pools of training processes): under
# pytest-xdist one worker runs them one after another, so two such peaks never add up.
MEMORY_HEAVY_FILES = {"test_models_zoo.py", "test_counting.py", "test_ablate.py",
                      "test_cli_train.py"}


def pytest_collection_modifyitems(config, items):
    """Under ``--dist loadgroup``: each file on one worker, the memory-heavy ones together."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group(
            "memory-heavy files" if name in MEMORY_HEAVY_FILES else str(item.path)))
