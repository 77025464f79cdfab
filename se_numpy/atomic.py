"""Files in a run directory are replaced whole or not at all.

``atomic_write(path, write)`` hands ``write`` a stream on a temporary file in
the same directory, flushes it to disk (fsync), renames it over ``path`` with
``os.replace`` and makes the rename durable (fsync of the directory). A crash,
a kill or a full disk at any moment leaves either the old file or the new one,
never half of one; a failed write removes its temporary file, and a killed
process's temporary file (``.NAME.PID.RANDOM.tmp``) is removed by
``remove_stale_temporaries`` when the next run starts in that directory.

The temporary file is created with mode 0o666 less the process umask, as
``open()`` would create ``path`` itself (0644 under the usual umask 022).
"""
import os
import secrets

TEMPORARY_SUFFIX = ".tmp"


def temporary_name(path):
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
                                   f"{TEMPORARY_SUFFIX}")


def open_temporary(path):
    """A new temporary file beside ``path``: ``(its name, a binary stream on it)``."""
    temporary = temporary_name(path)
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    return temporary, os.fdopen(handle, "wb")


def atomic_write(path, write):
    """Write ``path`` through ``write(stream)`` atomically; returns ``path``.

    Raises the ``OSError`` of a failed write (full disk, permission, name too
    long) after removing the temporary file; ``path`` is then unchanged.
    """
    temporary, stream = open_temporary(path)

    def fill():
        with stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
    return _fill_then_replace(temporary, path, fill)


def atomic_write_named(path, write_to):
    """Like ``atomic_write`` for writers that take a file name instead of a stream
    (``safetensors.numpy.save_file``): ``write_to(temporary_name)`` fills the
    temporary file, which then replaces ``path``."""
    temporary, stream = open_temporary(path)
    stream.close()
    mode = os.stat(temporary).st_mode      # the umask's mode; some writers recreate the file

    def fill():
        write_to(temporary)
        os.chmod(temporary, mode)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
    return _fill_then_replace(temporary, path, fill)


def _fill_then_replace(temporary, path, fill):
    """Run ``fill()``, then rename ``temporary`` over ``path``; on any failure remove
    ``temporary`` and re-raise, leaving ``path`` as it was."""
    try:
        fill()
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _sync_directory(os.path.dirname(os.path.abspath(path)))
    return path


def _sync_directory(directory):
    """Make a rename durable (the directory entry), where the platform allows it."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def is_temporary(name, stem):
    """Whether ``name`` is a temporary file of ``stem`` (this module's or the older
    ``.checkpoint-XXXX.npz.tmp`` that ``tempfile.mkstemp`` made)."""
    if not name.endswith(TEMPORARY_SUFFIX):
        return False
    base, extension = os.path.splitext(stem)
    return name.startswith(f".{stem}.") or (name.startswith(f".{base}-")
                                            and name.endswith(f"{extension}{TEMPORARY_SUFFIX}"))


def remove_stale_temporaries(directory, stems):
    """Remove temporary files of ``stems`` left by a killed writer; returns their names.

    Call only while holding the run directory's lock: then no other writer
    can be in the middle of using one.
    """
    removed = []
    for name in sorted(os.listdir(directory)):
        if any(is_temporary(name, stem) for stem in stems):
            os.remove(os.path.join(directory, name))
            removed.append(name)
    return removed
