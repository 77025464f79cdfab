"""Pickle programs written opcode by opcode.

``cifar_batch_py2`` reproduces the layout of the official CIFAR files
(Python 2 ``cPickle``, protocol 2: SHORT_BINSTRING keys, BINPUT memo, GLOBAL
numpy names, ``_reconstruct`` + BUILD for the data array, APPENDS of BININT1
labels); the attack builders reuse its pieces with one thing changed.
"""
import struct

PROTO2 = b"\x80\x02"
MARK, STOP, TUPLE, TUPLE1, TUPLE2, TUPLE3 = b"(", b".", b"t", b"\x85", b"\x86", b"\x87"
EMPTY_DICT, EMPTY_LIST, SETITEMS, APPENDS, REDUCE, BUILD = b"}", b"]", b"u", b"e", b"R", b"b"
NONE, NEWFALSE, NEWTRUE = b"N", b"\x89", b"\x88"


def short_string(data):
    """SHORT_BINSTRING (Python 2 str, read back as bytes)."""
    return b"U" + bytes([len(data)]) + data


def string(data):
    """BINSTRING: a 4-byte length (the 30 MB data string of a batch)."""
    return b"T" + struct.pack("<I", len(data)) + data


def unicode(text):
    data = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def integer(value):
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    if -2**31 <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def put(index):
    return b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index)


def get(index):
    return b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def dtype(code=b"u1", state=None):
    """numpy.dtype(code, 0, 1) with its BUILD state (default: a plain number's)."""
    if state is None:
        order = b"|" if code in (b"u1", b"i1", b"b1") else b"<"
        state = (MARK + integer(3) + short_string(order) + NONE + NONE + NONE
                 + integer(-1) + integer(-1) + integer(0) + TUPLE)
    return (glob("numpy", "dtype") + short_string(code) + integer(0) + integer(1) + TUPLE3
            + REDUCE + state + BUILD)


def ndarray(shape, data, code=b"u1", fortran=NEWFALSE, dtype_program=None):
    """An array as Python 2 NumPy pickles it: _reconstruct(ndarray, (0,), 'b') + state."""
    shape_program = MARK + b"".join(integer(n) for n in shape) + TUPLE
    return (glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray")
            + integer(0) + TUPLE1 + short_string(b"b") + TUPLE3 + REDUCE
            + MARK + integer(1) + shape_program + (dtype_program or dtype(code)) + fortran
            + string(data) + TUPLE + BUILD)


def int_list(values):
    return EMPTY_LIST + MARK + b"".join(integer(v) for v in values) + APPENDS


def batch_dict(entries):
    """A dict of (key program, value program) pairs, memoized as cPickle does."""
    body = b"".join(key + value for key, value in entries)
    return PROTO2 + EMPTY_DICT + put(1) + MARK + body + SETITEMS + STOP


def cifar_batch_py2(images, labels, label_key=b"labels"):
    """A CIFAR batch (uint8 images (N, 3072), list of int labels) in the official layout."""
    return batch_dict([
        (short_string(b"batch_label"), short_string(b"training batch 1 of 5")),
        (short_string(label_key), int_list(labels)),
        (short_string(b"data"), ndarray(images.shape, images.tobytes())),
        (short_string(b"filenames"), EMPTY_LIST + MARK
         + b"".join(short_string(b"img%d.png" % i) for i in range(len(labels))) + APPENDS),
    ])
