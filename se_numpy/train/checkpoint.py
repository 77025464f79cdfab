"""Checkpoints as ``.npz`` files: arrays only, never pickle, written atomically.

One file holds everything a run needs to continue exactly where it stopped:

    model/<name>        every entry of model.state_dict() (parameters and BatchNorm buffers)
    optimizer/<name>    every entry of optimizer.state_dict() (momentum buffers, lrs, step count)
    meta                a JSON string: epoch, run config, metrics so far, and the
                        random generator's state (PCG64's 128-bit integers are fine in JSON)

Loading uses ``np.load(path, allow_pickle=False)``, so a checkpoint from an
untrusted source can hold wrong numbers but cannot run code.

Atomic write: the file is written under a temporary name in the same directory,
flushed to disk (fsync) and renamed over the old one with ``os.replace``. A crash
(or a NaN stop) at any moment leaves either the old checkpoint or the new one,
never half a file.
"""
import json
import os
import tempfile

import numpy as np

FORMAT_VERSION = 1


def generator_state_to_json(rng):
    """The state of a ``np.random.Generator`` as a JSON string."""
    return json.dumps(rng.bit_generator.state)


def generator_from_json(text):
    """A new Generator continuing exactly from a state saved by ``generator_state_to_json``."""
    state = json.loads(text)
    bit_generator_class = getattr(np.random, state["bit_generator"], None)
    if bit_generator_class is None or not isinstance(bit_generator_class, type) or \
            not issubclass(bit_generator_class, np.random.BitGenerator):
        raise ValueError(f"checkpoint: unknown bit generator {state['bit_generator']!r}")
    bit_generator = bit_generator_class()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def save_checkpoint(path, model_state, optimizer_state, meta):
    """Write the checkpoint atomically. ``meta`` must be JSON-serialisable."""
    arrays = {f"model/{key}": np.asarray(value) for key, value in model_state.items()}
    arrays.update({f"optimizer/{key}": np.asarray(value) for key, value in optimizer_state.items()})
    arrays["meta"] = np.array(json.dumps({"format_version": FORMAT_VERSION, **meta}))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".checkpoint-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    # make the rename itself durable (the directory entry), where the platform allows it
    try:
        directory_handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(directory_handle)
    except OSError:
        pass
    finally:
        os.close(directory_handle)
    return path


def load_checkpoint(path):
    """Read a checkpoint: returns ``(model_state, optimizer_state, meta)``.

    Raises ``FileNotFoundError`` if it is missing and ``ValueError`` if it is not
    a checkpoint written by ``save_checkpoint``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npz checkpoint ({error})") from None
    if "meta" not in arrays:
        raise ValueError(f"{path}: not a se_numpy checkpoint (no 'meta' entry)")
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {meta.get('format_version')}, "
                         f"expected {FORMAT_VERSION}")
    model_state = {key[len("model/"):]: value for key, value in arrays.items()
                   if key.startswith("model/")}
    optimizer_state = {key[len("optimizer/"):]: value for key, value in arrays.items()
                       if key.startswith("optimizer/")}
    return model_state, optimizer_state, meta
