"""One training per run directory: an exclusive OS lock on ``RUN_DIR/.lock``.

Two trainings writing one ``--out`` would interleave checkpoints and
metrics of different runs. ``RunDirectoryLock`` takes ``fcntl.flock(LOCK_EX |
LOCK_NB)`` on ``RUN_DIR/.lock`` for as long as a training runs. The kernel
drops the lock when the process ends in any way (exit, exception, SIGKILL),
so unlike a pid file it never outlives its process; the pid written into the
file only makes the refusal message useful.

The lock is re-entrant within one process (``se-numpy train`` holds it while
it reads the old checkpoint and while ``Trainer.fit`` runs). Where ``fcntl``
does not exist (Windows) no lock is taken.
"""
import os

try:
    import fcntl
except ImportError:                   # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".lock"

_held = {}          # real path of a run directory -> [file descriptor, depth]


class RunDirectoryBusy(RuntimeError):
    """Another process is training into this run directory."""


class RunDirectoryLock:
    """``with RunDirectoryLock(run_dir):`` creates ``run_dir`` if needed and holds its lock.

    Raises ``RunDirectoryBusy`` if another process holds it and ``ValueError``
    naming the directory if it cannot be created or opened (a file in the
    way, no permission, a name too long).
    """

    def __init__(self, run_dir):
        self.run_dir = run_dir

    def __enter__(self):
        if os.path.exists(self.run_dir) and not os.path.isdir(self.run_dir):
            raise ValueError(f"run directory {self.run_dir} exists and is not a directory")
        try:
            os.makedirs(self.run_dir, exist_ok=True)
            key = self._key = os.path.realpath(self.run_dir)
            if key in _held:
                _held[key][1] += 1
                return self
            handle = os.open(os.path.join(self.run_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise ValueError(f"cannot use run directory {self.run_dir}: "
                             f"{error.strerror or error}") from None
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(handle)
                os.close(handle)
                raise RunDirectoryBusy(
                    f"{self.run_dir} is in use by another training{holder}; wait for it "
                    "to finish or choose another --out") from None
        try:
            os.ftruncate(handle, 0)
            os.write(handle, f"{os.getpid()}\n".encode())
        except OSError:
            pass              # a full disk: the pid only makes messages nicer, the lock holds
        _held[key] = [handle, 1]
        return self

    def __exit__(self, *exc_info):
        entry = _held[self._key]
        entry[1] -= 1
        if entry[1] == 0:
            del _held[self._key]
            if fcntl is not None:
                fcntl.flock(entry[0], fcntl.LOCK_UN)
            os.close(entry[0])
        return False


def _read_holder(handle):
    try:
        text = os.pread(handle, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (process {text})" if text.isdigit() else ""
