"""Checkpoints as ``.npz`` files: arrays only, never pickle, written atomically, read lazily.

One file holds everything a run needs to continue exactly where it stopped:

    model/<name>        every entry of model.state_dict() (parameters and BatchNorm buffers)
    optimizer/<name>    every entry of optimizer.state_dict() (momentum buffers, lrs, step count)
    meta                a JSON string: epoch, run config, metrics so far, and the
                        random generator's state (PCG64's 128-bit integers are fine in JSON)

Reading trusts nothing in the file. An ``.npz`` is a zip archive of ``.npy``
members; each member is opened on its own, its ``.npy`` header (dtype, shape)
checked before any of its data is read — against the model and optimiser when
they are given, otherwise against plain numeric dtypes — and only the members a
caller needs are read at all (``read_meta`` reads ``meta`` alone). ``meta`` is
capped at ``MAX_META_BYTES`` and its fields are type-checked (``check_meta``).
Every failure is one ``ValueError`` naming the file and what is wrong.

Writing goes through ``se_numpy.atomic.atomic_write``: a temporary file in the same
directory, fsync, ``os.replace``. A crash, a kill or a full disk at any
moment leaves either the old checkpoint or the new one, never half a file.
"""
import json
import math
import zipfile

import numpy as np

from ..atomic import atomic_write
from .config import TrainConfig

FORMAT_VERSION = 1
MAX_META_BYTES = 8 * 2**20          # a 1000-epoch history is about 0.2 MB
MAX_MEMBERS = 10_000                # a ResNet-152's state is about 1 500 arrays
_ARRAY_KINDS = "biuf"               # bool, int, uint, float: what state dicts hold
HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr",
                "seconds")


def generator_state_to_json(rng):
    """The state of a ``np.random.Generator`` as a JSON string."""
    return json.dumps(rng.bit_generator.state)


def generator_from_json(text):
    """A new Generator continuing exactly from a state saved by ``generator_state_to_json``."""
    try:
        state = json.loads(text)
        name = state["bit_generator"]
    except (TypeError, ValueError, KeyError, RecursionError):
        raise ValueError("checkpoint: rng_state is not a saved generator state") from None
    bit_generator_class = getattr(np.random, name, None) if isinstance(name, str) else None
    if bit_generator_class is None or not isinstance(bit_generator_class, type) or \
            not issubclass(bit_generator_class, np.random.BitGenerator):
        raise ValueError(f"checkpoint: unknown bit generator {str(name)[:40]!r}")
    bit_generator = bit_generator_class()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise ValueError(f"checkpoint: rng_state does not fit {name}: {error}") from None
    return np.random.Generator(bit_generator)


def save_checkpoint(path, model_state, optimizer_state, meta):
    """Write the checkpoint atomically. ``meta`` must be JSON-serialisable."""
    arrays = {f"model/{key}": np.asarray(value) for key, value in model_state.items()}
    arrays.update({f"optimizer/{key}": np.asarray(value) for key, value in optimizer_state.items()})
    arrays["meta"] = np.array(json.dumps({"format_version": FORMAT_VERSION, **meta}))
    return atomic_write(path, lambda stream: np.savez(stream, **arrays))


# ---------------------------------------------------------------------------- reading
class _Refusal(ValueError):
    """A checkpoint entry broke a rule (already a full message naming the file)."""


class _Archive:
    """An ``.npz`` opened lazily: member names from the zip directory, data on request."""

    def __init__(self, path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"checkpoint not found: {path}") from None
        except Exception as error:     # noqa: BLE001 - zipfile raises many kinds on bad input
            # BadZipFile, EOFError, struct.error, UnicodeDecodeError, NotImplementedError ...:
            # whatever the parser trips over, the file is not a readable archive
            raise ValueError(f"{path}: not a se_numpy checkpoint (not a readable .npz archive: "
                             f"{_reason(error)})") from None
        infos = self.zip.infolist()
        if len(infos) > MAX_MEMBERS:
            self.close()
            raise ValueError(f"{path}: {len(infos)} archive members (at most {MAX_MEMBERS})")
        self.members = {info.filename[:-4]: info for info in infos
                        if info.filename.endswith(".npy")}

    def close(self):
        self.zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def fail(self, member, reason):
        raise _Refusal(f"{self.path}: entry {member!r}: {reason}")

    def read(self, member, expected=None, max_bytes=None, kinds=_ARRAY_KINDS):
        """One member as an owned array, after checking its header.

        ``expected``: ``(shape, dtype)`` it must have exactly; ``max_bytes``:
        a cap on its data; ``kinds``: the dtype kinds allowed.
        """
        info = self.members.get(member)
        if info is None:
            self.fail(member, "missing")
        try:
            with self.zip.open(info) as stream:
                version = np.lib.format.read_magic(stream)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
                else:
                    self.fail(member, f".npy format version {version} (1.0 or 2.0 expected)")
                if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype:
                    self.fail(member, f"dtype {dtype} is not a plain number")
                if expected is not None and (tuple(shape), dtype) != (tuple(expected[0]),
                                                                      np.dtype(expected[1])):
                    self.fail(member, f"shape {tuple(shape)} {dtype}, the model needs "
                                      f"{tuple(expected[0])} {np.dtype(expected[1])}")
                count = math.prod(shape) * dtype.itemsize
                if count > (info.file_size if max_bytes is None else max_bytes):
                    self.fail(member, f"header declares {count} bytes, more than "
                                      f"{info.file_size if max_bytes is None else max_bytes}")
                data = stream.read(count)
                if len(data) != count:
                    self.fail(member, f"{len(data)} of {count} data bytes (truncated)")
        except _Refusal:
            raise
        except Exception as error:     # noqa: BLE001 - see _Archive.__init__
            # a damaged member: BadZipFile (CRC), zlib.error, an encrypted flag (RuntimeError),
            # a header NumPy's parser cannot tokenize (SyntaxError, tokenize.TokenError) ...
            self.fail(member, f"unreadable ({_reason(error)})")
        flat = np.frombuffer(data, dtype=dtype)
        return flat.reshape(shape, order="F" if fortran else "C").copy()

    def read_group(self, prefix, expected=None, optional=()):
        """Every member ``prefix/NAME`` as ``{NAME: array}``.

        With ``expected`` (``{NAME: (shape, dtype)}``), missing and extra names
        are refused before anything is read; names in ``optional`` may be absent.
        """
        names = [name[len(prefix) + 1:] for name in self.members if name.startswith(prefix + "/")]
        if expected is not None:
            missing = [name for name in expected if name not in names and name not in optional]
            extra = [name for name in names if name not in expected]
            if missing or extra:
                raise ValueError(f"{self.path}: the {prefix} entries do not fit: "
                                 + "; ".join(part for part in (
                                     f"missing {_short_list(missing)}" if missing else "",
                                     f"unexpected {_short_list(extra)}" if extra else "")
                                     if part))
        return {name: self.read(f"{prefix}/{name}",
                                None if expected is None else expected[name])
                for name in names}

    def meta(self):
        if "meta" not in self.members:
            raise ValueError(f"{self.path}: not a se_numpy checkpoint (no 'meta' entry)")
        text = self.read("meta", max_bytes=MAX_META_BYTES, kinds="U")
        if text.shape != ():
            self.fail("meta", f"expected one string, got shape {text.shape}")
        try:
            meta = json.loads(str(text))
        except (ValueError, RecursionError) as error:
            self.fail("meta", f"not JSON ({_reason(error)})")
        return check_meta(meta, self.path)


def _reason(error):
    return f"{type(error).__name__}: {str(error)[:200]}"


def _short_list(names):
    return ", ".join(repr(name)[:60] for name in names[:5]) + (
        f" and {len(names) - 5} more" if len(names) > 5 else "")


def check_meta(meta, path):
    """Type-check a checkpoint's ``meta`` dict; returns it. Each rule broken is a ``ValueError``."""
    def fail(reason):
        raise ValueError(f"{path}: meta: {reason}")

    if not isinstance(meta, dict):
        fail(f"expected a JSON object, got {type(meta).__name__}")
    if meta.get("format_version") != FORMAT_VERSION:
        fail(f"checkpoint format {str(meta.get('format_version'))[:20]}, expected "
             f"{FORMAT_VERSION}")
    for key, kind in (("config", dict), ("epoch", int), ("history", list), ("rng_state", str),
                      ("normalization", dict), ("dataset", dict)):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            fail(f"{key!r} must be a JSON {kind.__name__}, got "
                 f"{type(meta.get(key)).__name__ if key in meta else 'nothing'}")
    try:
        config = TrainConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as error:
        fail(f"config: {str(error)[:200]}")
    if not 0 <= meta["epoch"] <= config.epochs:
        fail(f"epoch {meta['epoch']} outside [0, {config.epochs}] (the run's epochs)")
    if len(meta["history"]) != meta["epoch"] or not all(
            isinstance(row, dict) and all(_is_number(row.get(key)) for key in HISTORY_KEYS)
            for row in meta["history"]):
        fail(f"history must hold one row of {', '.join(HISTORY_KEYS)} per completed epoch "
             f"({meta['epoch']})")
    normalization = meta["normalization"]
    for key in ("mean", "std"):
        values = normalization.get(key)
        if not isinstance(values, list) or not values or not all(
                _is_number(v) for v in values):
            fail(f"normalization.{key} must be a list of finite numbers")
    if len(normalization["mean"]) != len(normalization["std"]):
        fail("normalization.mean and .std differ in length")
    return meta


def _is_number(value):
    """A finite int or float from JSON (which also allows 1e999 and 400-digit ints)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def read_meta(path):
    """Only ``meta`` of a checkpoint (no array is read), checked by ``check_meta``."""
    with _Archive(path) as archive:
        return archive.meta()


def load_checkpoint(path, model_expected=None, optimizer_expected=None, optimizer_optional=()):
    """Read a checkpoint: returns ``(model_state, optimizer_state, meta)``.

    ``model_expected`` / ``optimizer_expected`` map each state name to the
    ``(shape, dtype)`` it must have (e.g. from ``expected_state(model.state_dict())``);
    then missing, extra or misshapen entries are refused before any array is
    read (names in ``optimizer_optional``, the momentum buffers, may be
    absent). Without them every entry is still checked to be a plain numeric
    array no larger than its archive member.

    Raises ``FileNotFoundError`` if the file is missing and ``ValueError``
    (one line, naming the file) if it is not a checkpoint ``save_checkpoint``
    wrote for this model.
    """
    with _Archive(path) as archive:
        meta = archive.meta()
        model_state = archive.read_group("model", model_expected)
        optimizer_state = archive.read_group("optimizer", optimizer_expected, optimizer_optional)
    return model_state, optimizer_state, meta


def load_model_state(path, model_expected=None):
    """``(model_state, meta)``: the optimiser's entries are never read (evaluation)."""
    with _Archive(path) as archive:
        meta = archive.meta()
        return archive.read_group("model", model_expected), meta


def expected_state(state):
    """``{name: array}`` -> ``{name: (shape, dtype)}``, the layout a checkpoint must match."""
    return {name: (np.shape(value), np.asarray(value).dtype) for name, value in state.items()}
