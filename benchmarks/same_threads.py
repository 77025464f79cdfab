"""se_numpy and PyTorch on the same threads, each with its own OpenMP defaults.

Import this module before se_numpy. Two things make a side-by-side timing unfair
if nobody sees to them:

* **Numba's OpenMP runtime reads ``OMP_WAIT_POLICY`` once, when it starts**, and
  ``numba.set_num_threads`` starts it. se_numpy's numba backend sets the policy
  to ``passive`` when it is imported (``se_numpy/kernels/numba/threads.py``), so a
  script that calls ``numba.set_num_threads`` first runs se_numpy with spinning
  OpenMP workers, which steal the cores its convolution threads need. Measured
  (SE-ResNet-20 train step, batch 128, 2 threads): 616-656 ms passive against
  672-752 ms spinning. ``set_se_numpy_threads`` imports the backend first.
* **PyTorch inherits that policy** if it is started from the same process after
  se_numpy set it: its OpenMP workers then sleep between parallel regions, and the
  same step took 497-547 ms instead of 364-426 ms. ``torch_environment`` is the
  environment this process was started with, for PyTorch's subprocess.

PyTorch's wheel ships its own libgomp, a second OpenMP runtime beside the one
Numba's layer links, and each runtime reads the policy when it is loaded. So in one
process the policy each framework gets depends on what ran first: in the old
one-process evaluation benchmark both spun (``OMP_DISPLAY_ENV=verbose`` prints
``GOMP_SPINCOUNT = '300000'`` twice), and PyTorch started after se_numpy's backend
would sleep. Every benchmark here therefore runs PyTorch in a process of its own,
started with ``torch_environment()``, whatever the order of imports.
"""
import os

STARTING_ENVIRONMENT = dict(os.environ)      # before se_numpy's import can add to it


def set_se_numpy_threads(threads):
    """Numba's thread count and the BLAS's (threadpoolctl) to ``threads``, after se_numpy's
    numba backend has set its OpenMP wait policy. -> the policy in force."""
    import se_numpy.kernels.numba  # noqa: F401  (sets OMP_WAIT_POLICY before OpenMP starts)
    import numba
    import threadpoolctl
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    threadpoolctl.threadpool_limits(threads, user_api="blas")
    return os.environ.get("OMP_WAIT_POLICY", "default")


def torch_environment():
    """The environment for a PyTorch subprocess: this process's, as it was started."""
    return dict(STARTING_ENVIRONMENT)


def torch_wait_policy():
    """The OMP_WAIT_POLICY PyTorch's subprocess runs with ('default' where unset)."""
    return STARTING_ENVIRONMENT.get("OMP_WAIT_POLICY", "default")
