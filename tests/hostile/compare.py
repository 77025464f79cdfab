"""Run the attack catalogue against a source tree and print what each attack did.

    python tests/hostile/compare.py                 # this checkout
    python tests/hostile/compare.py --tree DIR      # another checkout (e.g. an older commit
                                                    # unpacked with `git archive`)

Each attack runs in its own process (``python -c``, or ``python -m se_numpy``)
with ``PYTHONPATH=DIR``, an address-space limit (``--memory-gb``, default 3) and
a time limit, and is classified from what the process left behind: exit code
or signal, whether stderr holds a traceback or one line, whether a canary file
appeared, and the process's peak resident memory (``os.wait4``).
"""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from hostile import archives as A   # noqa: E402
from hostile import pickles as P    # noqa: E402

# the environment of every attacked process; main() points PYTHONPATH at the tree
_ENV = dict(os.environ)

# a loader's contract is "ValueError naming the file": that is caught and reported as
# REFUSED; any other exception ends in a traceback, as it would for a user
_GUARD = ("\ntry:\n    {call}\nexcept ValueError as error:\n"
          "    print('REFUSED', len(str(error).splitlines()), 'line(s):', str(error)[:160])\n")
READ_CIFAR = "import sys\nfrom se_numpy.data import read_cifar_batch" + _GUARD.format(
    call="d, l = read_cifar_batch(sys.argv[1], 'labels', 10); "
         "print('LOADED', d.shape[0], 'images, first bytes', bytes(d.reshape(-1)[:8]))")
READ_IDX = "import sys\nfrom se_numpy.data import read_idx" + _GUARD.format(
    call="a = read_idx(sys.argv[1], 2051); print('LOADED', a.shape)")


def _cifar(raw):
    """``raw``: the file's bytes, or a function of the canary path returning them."""
    def setup(directory):
        path = os.path.join(directory, "data_batch_1")
        with open(path, "wb") as handle:
            handle.write(raw(os.path.join(directory, "canary")) if callable(raw) else raw)
        return ["-c", READ_CIFAR, path]
    return setup


def _idx(write):
    def setup(directory):
        path = os.path.join(directory, "train-images-idx3-ubyte")
        path = write(path)
        return ["-c", READ_IDX, path]
    return setup


def _gzip_bomb(path):
    path += ".gz"
    with open(path, "wb") as handle:
        handle.write(A.zeros_gzip(A.idx_header(2051, (100, 28, 28)), 2 * 2**30))
    return path


def _sparse(path):
    with open(path, "wb") as handle:
        handle.write(A.idx_header(2051, (10, 28, 28)))
        handle.truncate(2**31)
    return path


# ---------------------------------------------------------------------------- runs
def _mnist(directory):
    data = os.path.join(directory, "mnist")
    os.makedirs(data)
    import pathlib
    A.write_tiny_mnist(pathlib.Path(data))
    return data


TRAIN = ["-m", "se_numpy", "train", "--model", "tiny_resnet", "--batch-size", "8",
         "--backend", "numpy", "--quiet"]


def _base_run(directory, epochs=2):
    """A real run made with the tree under test: the checkpoint the attacks damage."""
    data = _mnist(directory)
    run = os.path.join(directory, "run")
    subprocess.run([sys.executable] + TRAIN + ["--data", f"mnist:{data}", "--epochs",
                                               str(epochs), "--out", run],
                   env=_ENV, check=True, capture_output=True)
    return data, run


def _checkpoint_attack(damage):
    def setup(directory):
        _, run = _base_run(directory)
        damage(os.path.join(run, "checkpoint.npz"))
        return ["-m", "se_numpy", "train", "--resume", "--out", run, "--quiet"]
    return setup


def _truncate(path):
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:len(raw) // 2])


def _crc(path):
    import zipfile
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model/fc.weight.npy")
    raw = bytearray(open(path, "rb").read())
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 200] ^= 0xFF
    open(path, "wb").write(bytes(raw))


def _meta(change):
    def damage(path):
        import io
        import zipfile

        import numpy as np
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(str(np.load(io.BytesIO(archive.read("meta.npy")))))
        buffer = io.BytesIO()
        np.save(buffer, np.array(json.dumps(change(meta))))
        tmp = path + ".new"
        A.rewrite_npz(path, tmp, replace={"meta.npy": buffer.getvalue()})
        os.replace(tmp, path)
    return damage


def _huge_meta(path):
    tmp = path + ".new"
    A.rewrite_npz(path, tmp, drop=("meta.npy",))
    A.deflated_zeros_member(tmp, "meta.npy", A.npy_header("<U300000000", ()), 1_200_000_000)
    os.replace(tmp, path)


def _junk_member(path):
    A.deflated_zeros_member(path, "junk.npy", A.npy_header("u1", (2**31,)), 2**31)


def _cli(arguments, prepare=None):
    def setup(directory):
        data = _mnist(directory)
        if prepare:
            prepare(directory)
        return [a.format(dir=directory, data=data) for a in arguments]
    return setup


def _two_writers(directory):
    data = _mnist(directory)
    run = os.path.join(directory, "run")
    command = [sys.executable] + TRAIN + ["--data", f"mnist:{data}", "--epochs", "3", "--out",
                                          run]
    processes = [subprocess.Popen(command + ["--seed", str(seed)], env=_ENV,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for seed in (11, 22)]
    codes = [process.wait() for process in processes]
    errors = [process.stderr.read() for process in processes]
    seeds = [s for s, c in zip((11, 22), codes) if c == 0]
    saved = json.load(open(os.path.join(run, "config.json")))["seed"]
    return (f"exit codes {codes}; config.json seed {saved}, winners {seeds}; "
            + ("; ".join(e.strip().splitlines()[-1][:90] for e in errors if e.strip()) or ""))


def _killed_write(directory):
    """kill -9 a training in the middle of its second checkpoint write, then start again."""
    data, run = _base_run(directory, epochs=1)
    before = open(os.path.join(run, "checkpoint.npz"), "rb").read()
    script = ("import sys, time, numpy\n"
              "real = numpy.savez\n"
              "def slow(stream, **arrays):\n"
              "    stream.write(b'x' * 4096); stream.flush(); open(sys.argv[1], 'w').close();"
              " time.sleep(60)\n"
              "numpy.savez = slow\n"
              "from se_numpy.cli import main\n"
              "sys.exit(main(sys.argv[2:]))\n")
    ready = os.path.join(directory, "ready")
    child = subprocess.Popen([sys.executable, "-c", script, ready, "train", "--resume",
                              "--epochs", "2", "--out", run, "--quiet"], env=_ENV,
                             stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not os.path.exists(ready) and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    intact = open(os.path.join(run, "checkpoint.npz"), "rb").read() == before
    left = [n for n in os.listdir(run) if n.endswith(".tmp")]
    subprocess.run([sys.executable] + TRAIN + ["--resume", "--epochs", "2", "--out", run],
                   env=_ENV, capture_output=True)
    after = [n for n in os.listdir(run) if n.endswith(".tmp")]
    return (f"checkpoint intact: {intact}; temporaries after kill: {len(left)}, "
            f"after the next start: {len(after)}")


FULL_DISK = """
import builtins, errno, os, sys
TARGET = sys.argv[1]

class Full:
    # a file whose writes fail with ENOSPC when its name contains TARGET
    def __init__(self, stream, path):
        self._stream, self._path = stream, str(path)
    def write(self, data):
        if TARGET in os.path.basename(self._path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._stream.write(data)
    def __getattr__(self, name):
        return getattr(self._stream, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc_info):
        return self._stream.__exit__(*exc_info)

real_open, real_fdopen = builtins.open, os.fdopen
builtins.open = lambda file, *a, **k: Full(real_open(file, *a, **k), file)
os.fdopen = lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k), os.readlink(f"/proc/self/fd/{fd}"))
from se_numpy.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _full_disk(target):
    """Resume a 1-epoch run for a second epoch while writes to ``target`` fail with ENOSPC."""
    def run(directory):
        _, run_dir = _base_run(directory, epochs=1)
        paths = [os.path.join(run_dir, name) for name in ("checkpoint.npz", "metrics.jsonl")]
        before = [open(path, "rb").read() for path in paths]
        result = subprocess.run([sys.executable, "-c", FULL_DISK, target, "train", "--resume",
                                 "--epochs", "2", "--out", run_dir, "--quiet"], env=_ENV,
                                capture_output=True, text=True)
        after = [open(path, "rb").read() for path in paths]
        state = ", ".join(f"{os.path.basename(path)} {'intact' if old == new else 'changed'}"
                          f" ({len(new)} bytes)" for path, old, new in zip(paths, before, after))
        return f"exit {result.returncode}, {_describe_stderr(result.stderr)}; {state}"
    return run


def _describe_stderr(stderr):
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "no message"
    if any(line.startswith("Traceback") for line in lines):
        return f"traceback ({len(lines)} lines) ending {lines[-1][:100]!r}"
    return f"{len(lines)} line(s): {lines[-1][:140]!r}"


ATTACKS = [
    ("pickle: os.system through GLOBAL+REDUCE", _cifar(lambda c: P.os_system(f"touch {c}"))),
    ("pickle: INST os.system", _cifar(lambda c: P.inst_system(f"touch {c}"))),
    ("pickle: ndarray(offset=-4096)", _cifar(P.ndarray_with_offset(-4096))),
    ("pickle: ndarray(offset=-2**40)", _cifar(P.ndarray_with_offset(-2**40))),
    ("pickle: dtype state with object flags", _cifar(P.dtype_with_object_flags())),
    ("pickle: object dtype array", _cifar(P.object_dtype_array())),
    ("pickle: zero-stride ndarray (350000, 3072)", _cifar(P.zero_stride_array())),
    ("pickle: tuple nested 10**6 deep", _cifar(P.nested_tuples(10**6))),
    ("pickle: 40k int keys hashing to 0", _cifar(P.colliding_int_keys(40_000))),
    ("pickle: LONG_BINPUT 2**27 (9 bytes)", _cifar(P.memo_index(2**27))),
    ("pickle: billion-laughs dict key", _cifar(P.laughs_key(levels=8, width=10))),
    ("pickle: one data string, 1000 arrays", _cifar(P.amplified_arrays(1000))),
    ("pickle: label 2**63", _cifar(P.label_list_with(2**63))),
    ("pickle: empty batch", _cifar(P.cifar_batch_py2(__import__("numpy").zeros((0, 3072), "u1"), []))),
    ("idx: 2 MB .gz holding 2 GiB", _idx(_gzip_bomb)),
    ("idx: sparse 2 GiB plain file", _idx(_sparse)),
    ("checkpoint: truncated zip", _checkpoint_attack(_truncate)),
    ("checkpoint: CRC-damaged member", _checkpoint_attack(_crc)),
    ("checkpoint: meta is a list", _checkpoint_attack(_meta(lambda m: [1, 2]))),
    ("checkpoint: meta without config",
     _checkpoint_attack(_meta(lambda m: {k: v for k, v in m.items() if k != "config"}))),
    ("checkpoint: epoch -5", _checkpoint_attack(_meta(lambda m: {**m, "epoch": -5}))),
    ("checkpoint: deflated 300M-char meta", _checkpoint_attack(_huge_meta)),
    ("checkpoint: deflated 2 GiB junk member", _checkpoint_attack(_junk_member)),
    ("cli: --train-limit -5", _cli(TRAIN + ["--data", "mnist:{data}", "--epochs", "1",
                                            "--train-limit", "-5", "--out", "{dir}/r"])),
    ("cli: --test-limit 0", _cli(TRAIN + ["--data", "mnist:{data}", "--epochs", "1",
                                          "--test-limit", "0", "--out", "{dir}/r"])),
    ("cli: --warmup -3", _cli(TRAIN + ["--data", "mnist:{data}", "--epochs", "1", "--warmup",
                                       "-3", "--out", "{dir}/r"])),
    ("cli: demo --epochs 0", _cli(["-m", "se_numpy", "demo", "--fast", "--epochs", "0",
                                   "--backend", "numpy", "--quiet", "--out", "{dir}/demo"])),
    ("cli: evaluate a text file", _cli(["-m", "se_numpy", "evaluate", "{dir}/notes.npz"],
                                       lambda d: open(os.path.join(d, "notes.npz"), "w").write("hi"))),
    ("cli: --out an existing file", _cli(TRAIN + ["--data", "mnist:{data}", "--epochs", "1",
                                                  "--out", "{dir}/afile"],
                                         lambda d: open(os.path.join(d, "afile"), "w").write("x"))),
    ("cli: --out name too long", _cli(TRAIN + ["--data", "mnist:{data}", "--epochs", "1",
                                               "--out", "{dir}/" + "x" * 300])),
    ("cli: bench --backend cuda, no GPU", _cli(["-m", "se_numpy", "bench", "--backend", "cuda",
                                                "--quick", "--no-torch", "--out", "{dir}/b"])),
    ("cli: gradcheck --only nothing", _cli(["-m", "se_numpy", "gradcheck", "--only", "zzz"])),
    ("cli: models --only AlexNet", _cli(["-m", "se_numpy", "models", "--only", "AlexNet"])),
    ("cli: --data mnist:~/mnist", _cli(TRAIN + ["--data", "mnist:~/mnist", "--epochs", "0",
                                                "--out", "{dir}/r"])),
    ("run dir: two trainings, one --out", _two_writers),
    ("run dir: kill -9 during a checkpoint write", _killed_write),
    ("run dir: full disk on the checkpoint", _full_disk("checkpoint")),
    ("run dir: full disk on metrics.jsonl", _full_disk("metrics")),
]


def _run_one(setup, memory_bytes, timeout):
    """(outcome, seconds, peak resident MB) of one attack in a fresh directory."""
    directory = tempfile.mkdtemp(prefix="se_numpy_attack_")
    canary = os.path.join(directory, "canary")
    env = {**_ENV, "HOME": directory}
    try:
        result = setup(directory)
        if isinstance(result, str):                     # a scenario that reports itself
            return result, "", ""

        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        out_path, err_path = os.path.join(directory, "stdout"), os.path.join(directory, "stderr")
        start = time.perf_counter()
        with open(out_path, "w") as out, open(err_path, "w") as err:
            process = subprocess.Popen([sys.executable] + result, env=env, cwd=directory,
                                       stdout=out, stderr=err, preexec_fn=limit)
        # reap it ourselves: os.wait4 gives this one process's peak resident memory
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                process.kill()
                os.wait4(process.pid, 0)
                return f"timeout after {timeout:.0f} s", "", ""
            time.sleep(0.02)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        stdout, stderr = open(out_path).read(), open(err_path).read()
        code = process.returncode
        if code < 0:
            outcome = f"killed by {signal.Signals(-code).name}"
        elif "LOADED" in stdout:
            outcome = "accepted: " + stdout.strip().splitlines()[-1][7:]
        elif "REFUSED" in stdout:
            outcome = "ValueError, " + stdout.strip().splitlines()[-1][8:]
        else:
            outcome = f"exit {code}, {_describe_stderr(stderr)}"
        if os.path.exists(canary):
            outcome += "; CANARY CREATED (code ran)"
        return outcome, f"{seconds:.1f} s", f"{usage.ru_maxrss / 1024:.0f} MB"
    finally:
        shutil.rmtree(directory, ignore_errors=True)



def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default=os.path.dirname(os.path.dirname(HERE)),
                        help="source tree whose se_numpy is attacked (default: this checkout)")
    parser.add_argument("--memory-gb", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--only", help="substring of the attacks to run")
    args = parser.parse_args()
    _ENV["PYTHONPATH"] = os.path.abspath(args.tree)
    _ENV.pop("NUMBA_ENABLE_CUDASIM", None)
    for name, setup in ATTACKS:
        if args.only and args.only not in name:
            continue
        outcome, seconds, peak = _run_one(setup, int(args.memory_gb * 2**30), args.timeout)
        print(f"{name} | {outcome} | {seconds} | {peak}", flush=True)


if __name__ == "__main__":
    main()
