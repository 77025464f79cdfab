"""A pickle reader that builds plain data and never calls anything: for the CIFAR files.

A pickle is a program for a small stack machine (``pickletools`` documents
every opcode). Python's own unpickler runs any function the program names,
and even a short allow-list of NumPy functions is enough for a crafted file
to corrupt memory: ``numpy.ndarray(shape, dtype, buffer, offset=-4096)``
reads outside its buffer, a dtype whose state marks an object field makes
NumPy treat raw bytes as pointers. This reader is its own stack machine,
written out here, that understands only the opcodes the CIFAR files (Python 2
``cPickle`` protocol 2) and Python 3 re-pickles (protocols 2-5) of the same
content contain, and that stops at anything else.

What it builds:

    dict, list, tuple, bytes, str, int (at most 64 bits), float, bool, None
    numpy arrays, from the three ways NumPy pickles a plain array:
        numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b') + state
        numpy.core.numeric._frombuffer(buffer, dtype, shape, order)     (protocol 5)
        numpy.core.multiarray.scalar(dtype, bytes)                      (one number)
    (``numpy._core`` spellings too) and ``_codecs.encode(text, 'latin1')``,
    which Python 3's protocol 2 uses for bytes.

The NumPy names are resolved to *stand-ins* that only record their
arguments; no NumPy callable ever sees the file's values. An array is made
here, after checking that its dtype is one of ``ARRAY_DTYPES`` (no fields, no
objects, no sub-arrays: the dtype state must be exactly that of a plain
number), its shape a tuple of non-negative ints whose product times the item
size equals the number of data bytes, with no offset and no strides, as

    np.frombuffer(data, dtype).reshape(shape, order).copy()

Limits that keep memory and time proportional to the file:

    file size           MAX_FILE_BYTES
    nesting depth       MAX_DEPTH containers inside each other
    dict size           MAX_DICT_ITEMS keys; keys are bytes, str or int only
    tuple size          MAX_TUPLE_ITEMS
    open MARKs          MAX_DEPTH
    memo                a dict (any index costs one entry), at most MAX_MEMO_ENTRIES
    built data          arrays and encoded bytes together at most twice the file's size
    integers            at most 64 bits

A container cannot change after it has been put into another one, so the
depth recorded when it is put there stays true and no cycle can form.

Every refusal is a ``PickleRefused`` (a ``ValueError``) saying which opcode
at which byte offset broke which rule.
"""
import os
import pickletools
import struct

import numpy as np

MAX_FILE_BYTES = 256 * 2**20     # CIFAR-100's train file holds 50 000 x 3 072 pixel bytes
MAX_DEPTH = 8                    # the CIFAR files need 2 (a dict of lists)
MAX_DICT_ITEMS = 256             # a batch has 4-5 keys; bounds a hash-collision flood
MAX_TUPLE_ITEMS = 16             # NumPy's dtype state, the largest tuple, has 8
MAX_MEMO_ENTRIES = 2**20         # CIFAR-100's train file memoizes about 10^5 objects
MAX_GLOBAL_NAME = 64             # bytes in one "module\n" or "name\n" line

# plain numeric dtypes an array may have (NumPy's short codes, as pickles spell them)
ARRAY_DTYPES = ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "b1")

_OPCODE_NAMES = {op.code.encode("latin-1"): op.name for op in pickletools.opcodes}


class PickleRefused(ValueError):
    """The file is not a pickle of plain data this reader accepts."""


class _StandIn:
    """A name from the file (``numpy.dtype`` ...), resolved to nothing callable."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<stand-in for {self.name}>"


_RECONSTRUCT = _StandIn("numpy multiarray._reconstruct")
_NDARRAY = _StandIn("numpy.ndarray")
_DTYPE = _StandIn("numpy.dtype")
_FROMBUFFER = _StandIn("numpy numeric._frombuffer")
_SCALAR = _StandIn("numpy multiarray.scalar")
_ENCODE = _StandIn("_codecs.encode")

GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DTYPE,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("_codecs", "encode"): _ENCODE,
}


class _DtypeRecipe:
    """``numpy.dtype(code, align, copy)`` recorded; ``dtype`` is set once its state is checked."""

    def __init__(self, code):
        self.code = code
        self.dtype = None


class _ArrayRecipe:
    """``_reconstruct(ndarray, (0,), b'b')`` recorded; ``array`` is set by its BUILD."""

    def __init__(self):
        self.array = None


def _text(value):
    """bytes (Python 2 str) or str -> str; anything else -> None."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


def read_restricted_pickle(path):
    """Read ``path`` with the restricted machine; returns the plain object it holds.

    Raises ``FileNotFoundError`` if it is missing and ``PickleRefused`` (a
    ``ValueError``) naming the rule a file breaks.
    """
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise PickleRefused(f"{size} bytes is more than the {MAX_FILE_BYTES} a CIFAR file "
                                "may have")
        with open(path, "rb") as handle:
            # read(n) allocates n bytes up front: ask for the size stat gave, plus one
            # byte to notice a file that grew past the limit meanwhile
            raw = handle.read(size + 1)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise PickleRefused(f"cannot read ({type(error).__name__}: {error.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise PickleRefused(f"more than the {MAX_FILE_BYTES} bytes a CIFAR file may have")
    return _Machine(raw).run()


def loads_restricted(raw):
    """The same machine on bytes already in memory (tests, files inside archives)."""
    if len(raw) > MAX_FILE_BYTES:
        raise PickleRefused(f"more than the {MAX_FILE_BYTES} bytes a CIFAR file may have")
    return _Machine(bytes(raw)).run()


class _Machine:
    """The pickle stack machine, restricted. ``run()`` executes opcodes until STOP."""

    def __init__(self, raw):
        self.raw = raw
        self.position = 0
        self.stack = []
        self.marks = []             # stack lengths at each open MARK
        self.memo = {}
        self.depth = {}             # id(container) -> nesting depth (0 for scalars)
        self.sealed = set()         # ids of lists/dicts already inside another container
        self.alive = []             # keeps every container alive, so ids are never reused
        self.call_arguments = set()  # ids of tuples holding stand-ins: arguments, not data
        self.built_bytes = 0        # arrays and encoded bytes made so far
        self.opcode = b""
        self.opcode_at = 0

    # ---------------------------------------------------------------- reading the file
    def refuse(self, reason):
        name = _OPCODE_NAMES.get(self.opcode, repr(self.opcode))
        raise PickleRefused(f"{reason} (opcode {name} at byte {self.opcode_at})")

    def take(self, count):
        end = self.position + count
        if count < 0 or end > len(self.raw):
            self.refuse(f"needs {count} bytes but the file ends after "
                        f"{len(self.raw) - self.position} (truncated)")
        chunk = self.raw[self.position:end]
        self.position = end
        return chunk

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def line(self):
        end = self.raw.find(b"\n", self.position, self.position + MAX_GLOBAL_NAME + 1)
        if end < 0:
            self.refuse(f"expected a line of at most {MAX_GLOBAL_NAME} bytes")
        text = self.raw[self.position:end]
        self.position = end + 1
        return text

    # ---------------------------------------------------------------- the stack
    def push(self, value):
        self.stack.append(value)

    def pop(self):
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            self.refuse("the stack is empty")
        return self.stack.pop()

    def pop_to_mark(self):
        if not self.marks:
            self.refuse("no MARK to pop to")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def new_container(self, container):
        self.alive.append(container)
        self.depth[id(container)] = 1
        return container

    def place(self, item, into=None):
        """``item`` is about to become part of ``into``: finish recipes, seal, track depth.

        Returns what to store: the item, or the array of a finished array recipe.
        """
        if into is not None and item is into:
            self.refuse("a container cannot contain itself")
        if isinstance(item, _ArrayRecipe):
            if item.array is None:
                self.refuse("an array was used before its state was set")
            item = item.array
        elif isinstance(item, (_DtypeRecipe, _StandIn)) or id(item) in self.call_arguments:
            self.refuse(f"{_describe(item)} may only be an argument of a NumPy array recipe")
        if isinstance(item, (list, dict)):
            self.sealed.add(id(item))
        depth = self.depth.get(id(item), 0) + 1
        if depth > MAX_DEPTH:
            self.refuse(f"containers nested more than {MAX_DEPTH} deep")
        if into is not None and depth > self.depth[id(into)]:
            self.depth[id(into)] = depth
        return item

    def mutable_target(self, kind):
        target = self.stack[-1] if self.stack and (not self.marks or
                                                   len(self.stack) > self.marks[-1]) else None
        if not isinstance(target, kind):
            self.refuse(f"expected a {kind.__name__} below the items, found {_describe(target)}")
        if id(target) in self.sealed:
            self.refuse(f"a {kind.__name__} changed after it was put into another container")
        return target

    def make_tuple(self, items):
        """A tuple of the (finished) items; its arguments may be stand-ins and recipes."""
        if len(items) > MAX_TUPLE_ITEMS:
            self.refuse(f"a tuple of {len(items)} items (at most {MAX_TUPLE_ITEMS})")
        values, depth, holds_recipe = [], 1, False
        for item in items:
            if isinstance(item, _ArrayRecipe) and item.array is not None:
                item = item.array
            if isinstance(item, (_StandIn, _DtypeRecipe, _ArrayRecipe)) or \
                    id(item) in self.call_arguments:
                holds_recipe = True
            else:
                if isinstance(item, (list, dict)):
                    self.sealed.add(id(item))
                depth = max(depth, self.depth.get(id(item), 0) + 1)
            values.append(item)
        if depth > MAX_DEPTH:
            self.refuse(f"containers nested more than {MAX_DEPTH} deep")
        values = tuple(values)
        self.alive.append(values)
        self.depth[id(values)] = depth
        if holds_recipe:
            self.call_arguments.add(id(values))
        return values

    def append(self, target, items):
        if len(target) + len(items) > MAX_FILE_BYTES:
            self.refuse("a list longer than the file")
        target.extend(self.place(item, target) for item in items)

    def set_items(self, target, items):
        if len(items) % 2:
            self.refuse("an odd number of items for a dict")
        for key, value in zip(items[0::2], items[1::2]):
            if not isinstance(key, (bytes, str, int)) or isinstance(key, bool):
                self.refuse(f"a dict key must be bytes, str or int, found {_describe(key)}")
            target[key] = self.place(value, target)
            if len(target) > MAX_DICT_ITEMS:
                self.refuse(f"a dict of more than {MAX_DICT_ITEMS} keys")

    def charge(self, count):
        """Count bytes made by calls against twice the file's size (no amplification).

        Twice: a Python 3 protocol 2 file spells the data bytes as text that
        ``_codecs.encode`` turns into bytes, which then become the array.
        """
        self.built_bytes += count
        if self.built_bytes > 2 * len(self.raw):
            self.refuse(f"the calls would build {self.built_bytes} bytes from a file of "
                        f"{len(self.raw)}")

    # ---------------------------------------------------------------- the loop
    def run(self):
        while True:
            self.opcode_at = self.position
            if self.position >= len(self.raw):
                self.opcode = b""
                self.refuse("the file ends before STOP (truncated)")
            self.opcode = self.raw[self.position:self.position + 1]
            self.position += 1
            handler = _HANDLERS.get(self.opcode)
            if handler is None:
                self.refuse("this opcode is not accepted in a CIFAR file")
            try:
                if handler(self) is _STOP:
                    break
            except PickleRefused:
                raise
            except Exception as error:      # noqa: BLE001
                # a safety net: every rule above should have caught the file first
                self.refuse(f"malformed ({type(error).__name__}: {str(error)[:80]})")
        if self.marks or len(self.stack) != 1:
            self.refuse("STOP with more or less than one object on the stack")
        if self.position != len(self.raw):
            self.refuse(f"{len(self.raw) - self.position} bytes after STOP")
        return self.place(self.stack.pop())

    # ---------------------------------------------------------------- calls
    def reduce(self):
        arguments = self.pop()
        function = self.pop()
        if not isinstance(arguments, tuple):
            self.refuse(f"call arguments must be a tuple, found {_describe(arguments)}")
        if function is _ENCODE:
            return self.encode(arguments)
        if function is _DTYPE:
            code = _text(arguments[0]) if len(arguments) == 3 else None
            if code not in ARRAY_DTYPES or not all(_is_flag(v) for v in arguments[1:]):
                self.refuse(f"numpy.dtype{_describe_args(arguments)}: only the plain numeric "
                            f"codes {', '.join(ARRAY_DTYPES)} are accepted")
            return _DtypeRecipe(code)
        if function is _RECONSTRUCT:
            if len(arguments) != 3 or arguments[0] is not _NDARRAY or \
                    not _is_plain(arguments[1], (0,)) or _text(arguments[2]) != "b":
                self.refuse(f"_reconstruct{_describe_args(arguments)}: only "
                            "_reconstruct(numpy.ndarray, (0,), b'b') is accepted")
            return _ArrayRecipe()
        if function is _FROMBUFFER:
            if len(arguments) != 4:
                self.refuse("_frombuffer needs (buffer, dtype, shape, order)")
            buffer, dtype, shape, order = arguments
            fortran = {"C": False, "F": True}.get(_text(order))
            return self.make_array(buffer, dtype, shape, fortran)
        if function is _SCALAR:
            if len(arguments) != 2:
                self.refuse("scalar needs (dtype, bytes)")
            return self.make_array(arguments[1], arguments[0], (), False).item()
        self.refuse(f"{_describe(function)} cannot be called")

    def encode(self, arguments):
        if len(arguments) != 2 or not isinstance(arguments[0], str) or \
                _text(arguments[1]) not in ("latin1", "latin-1"):
            self.refuse("only _codecs.encode(text, 'latin1') is accepted")
        self.charge(len(arguments[0]))
        try:
            return arguments[0].encode("latin-1")
        except UnicodeEncodeError:
            self.refuse("_codecs.encode: text outside latin-1")

    def build(self):
        state = self.pop()
        target = self.pop()
        if isinstance(target, _DtypeRecipe) and target.dtype is None:
            target.dtype = self.dtype_from_state(target.code, state)
        elif isinstance(target, _ArrayRecipe) and target.array is None:
            if not isinstance(state, tuple) or len(state) != 5 or not _is_plain(state[0], 1):
                self.refuse("an array state must be (1, shape, dtype, is_fortran, data)")
            _, shape, dtype, fortran, data = state
            if not _is_flag(fortran):
                self.refuse("an array's is_fortran flag must be True or False")
            target.array = self.make_array(data, dtype, shape, bool(fortran))
        else:
            self.refuse(f"cannot set the state of {_describe(target)}")
        self.push(target)

    def dtype_from_state(self, code, state):
        # NumPy's state of a plain dtype: (3, byteorder, None, None, None, -1, -1, 0);
        # anything else (fields, sub-arrays, object flags, sizes) is refused
        order = _text(state[1]) if isinstance(state, tuple) and len(state) == 8 else None
        if order not in ("<", ">", "|", "=") or not _is_plain(state[0], 3) or \
                not _is_plain(state[2:], (None, None, None, -1, -1, 0)):
            self.refuse(f"dtype state {_describe_args(state)} is not that of a plain number: "
                        "expected (3, byteorder, None, None, None, -1, -1, 0)")
        dtype = np.dtype(code)
        if order == "|":
            if dtype.itemsize != 1 and dtype.kind != "b":
                self.refuse(f"dtype {code} needs a byte order, found '|'")
            return dtype
        return dtype.newbyteorder(order)

    def make_array(self, data, dtype, shape, fortran):
        if not isinstance(dtype, _DtypeRecipe) or dtype.dtype is None:
            self.refuse(f"an array needs a checked numpy.dtype, found {_describe(dtype)}")
        if fortran is None:
            self.refuse("an array's order must be 'C' or 'F'")
        if not isinstance(data, (bytes, bytearray)):
            self.refuse(f"array data must be bytes, found {_describe(data)}")
        if not isinstance(shape, tuple) or len(shape) > 4 or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            self.refuse(f"an array shape must be a tuple of at most 4 non-negative ints, found "
                        f"{_describe_args(shape)}")
        count = 1
        for n in shape:
            count *= n
        if count * dtype.dtype.itemsize != len(data):
            self.refuse(f"shape {shape} of {dtype.dtype} needs {count * dtype.dtype.itemsize} "
                        f"bytes, the data has {len(data)}")
        self.charge(len(data))
        flat = np.frombuffer(data, dtype=dtype.dtype)
        return flat.reshape(shape, order="F" if fortran else "C").copy()


_STOP = object()


def _is_plain(value, expected):
    """``value == expected`` for ints, None and tuples of them, never comparing arrays."""
    if isinstance(expected, tuple):
        return isinstance(value, tuple) and len(value) == len(expected) and all(
            _is_plain(v, e) for v, e in zip(value, expected))
    return type(value) in (int, bool, type(None)) and value == expected


def _is_flag(value):
    """0, 1, False or True: the flags NumPy writes."""
    return type(value) in (int, bool) and value in (0, 1)


def _describe(value):
    """A short, bounded description of a value from the file (never its full repr)."""
    if isinstance(value, (_StandIn, _DtypeRecipe, _ArrayRecipe)):
        return {_DtypeRecipe: "a numpy.dtype", _ArrayRecipe: "a numpy array"}.get(
            type(value), repr(value))
    if isinstance(value, (bool, int, float)) or value is None:
        text = repr(value)
        return text if len(text) <= 24 else f"an int of {value.bit_length()} bits"
    if isinstance(value, (bytes, str)) and len(value) <= 24:
        return repr(value)
    size = f" of {len(value)}" if hasattr(value, "__len__") else ""
    return f"a {type(value).__name__}{size}"


def _describe_args(values):
    if not isinstance(values, tuple):
        return _describe(values)
    return "(" + ", ".join(_describe(v) for v in values[:8]) + (", ..." if len(values) > 8
                                                                  else "") + ")"


# ---------------------------------------------------------------------------- opcodes
def _int_value(machine, value):
    if not -2**63 <= value < 2**64:
        machine.refuse("an integer wider than 64 bits")
    machine.push(value)


def _long(machine, length_format):
    length = machine.unpack(length_format)
    if length > 9:     # 9 bytes hold every value of int64 and uint64 in two's complement
        machine.refuse(f"an integer of {length} bytes (at most 9)")
    _int_value(machine, int.from_bytes(machine.take(length), "little", signed=True))


def _text_int(machine):
    # protocol 0 INT: Python 2 writes False/True as I00 / I01
    text = machine.line()
    if text == b"00":
        return machine.push(False)
    if text == b"01":
        return machine.push(True)
    if not text.lstrip(b"-").isdigit() or len(text) > 20:
        machine.refuse("INT must be a decimal integer")
    _int_value(machine, int(text))


def _get(machine, index):
    if index not in machine.memo:
        machine.refuse(f"memo entry {index} was never stored")
    machine.push(machine.memo[index])


def _put(machine, index):
    if not machine.stack or machine.marks and len(machine.stack) <= machine.marks[-1]:
        machine.refuse("nothing to memoize")
    if index not in machine.memo and len(machine.memo) >= MAX_MEMO_ENTRIES:
        machine.refuse(f"more than {MAX_MEMO_ENTRIES} memo entries")
    machine.memo[index] = machine.stack[-1]


def _mark(machine):
    if len(machine.marks) >= MAX_DEPTH:
        machine.refuse(f"more than {MAX_DEPTH} open MARKs")
    machine.marks.append(len(machine.stack))


def _global(machine, module, name):
    module, name = _text(module), _text(name)
    if not isinstance(module, str) or not isinstance(name, str):
        machine.refuse("a global's module and name must be strings")
    stand_in = GLOBALS.get((module, name))
    if stand_in is None:
        machine.refuse(f"refusing to load global {module[:MAX_GLOBAL_NAME]}."
                       f"{name[:MAX_GLOBAL_NAME]}: a CIFAR file holds only dicts, lists, "
                       "bytes, strings, numbers and plain numpy arrays")
    machine.push(stand_in)


def _stack_global(machine):
    name = machine.pop()
    module = machine.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        machine.refuse("STACK_GLOBAL needs two strings")
    _global(machine, module, name)


def _proto(machine):
    version = machine.unpack("<B")
    if not 2 <= version <= 5:
        machine.refuse(f"pickle protocol {version} (2 to 5 are accepted)")


def _frame(machine):
    length = machine.unpack("<Q")
    if length > len(machine.raw) - machine.position:
        machine.refuse("a frame longer than the rest of the file (truncated)")


def _tuple_of(count):
    def handler(machine):
        items = [machine.pop() for _ in range(count)][::-1]
        machine.push(machine.make_tuple(items))
    return handler


def _appends(machine):
    items = machine.pop_to_mark()
    machine.append(machine.mutable_target(list), items)


def _append(machine):
    item = machine.pop()
    machine.append(machine.mutable_target(list), [item])


def _setitems(machine):
    items = machine.pop_to_mark()
    machine.set_items(machine.mutable_target(dict), items)


def _setitem(machine):
    value = machine.pop()
    key = machine.pop()
    machine.set_items(machine.mutable_target(dict), [key, value])


def _list_from_mark(machine):
    items = machine.pop_to_mark()
    target = machine.new_container([])
    machine.append(target, items)
    machine.push(target)


def _dict_from_mark(machine):
    items = machine.pop_to_mark()
    target = machine.new_container({})
    machine.set_items(target, items)
    machine.push(target)


def _bytes(length_format, kind=bytes):
    def handler(machine):
        data = machine.take(machine.unpack(length_format))
        machine.push(data if kind is bytes else kind(data))
    return handler


def _unicode(length_format):
    def handler(machine):
        data = machine.take(machine.unpack(length_format))
        try:
            machine.push(data.decode("utf-8"))
        except UnicodeDecodeError:
            machine.refuse("a string that is not UTF-8")
    return handler


_HANDLERS = {
    b"\x80": _proto,
    b"\x95": _frame,
    b".": lambda m: _STOP,
    b"(": _mark,
    b"}": lambda m: m.push(m.new_container({})),
    b"]": lambda m: m.push(m.new_container([])),
    b")": lambda m: m.push(m.make_tuple([])),
    b"t": lambda m: m.push(m.make_tuple(m.pop_to_mark())),
    b"\x85": _tuple_of(1),
    b"\x86": _tuple_of(2),
    b"\x87": _tuple_of(3),
    b"l": _list_from_mark,
    b"d": _dict_from_mark,
    b"a": _append,
    b"e": _appends,
    b"s": _setitem,
    b"u": _setitems,
    b"N": lambda m: m.push(None),
    b"\x88": lambda m: m.push(True),
    b"\x89": lambda m: m.push(False),
    b"I": _text_int,
    b"J": lambda m: _int_value(m, m.unpack("<i")),
    b"K": lambda m: _int_value(m, m.unpack("<B")),
    b"M": lambda m: _int_value(m, m.unpack("<H")),
    b"\x8a": lambda m: _long(m, "<B"),
    b"\x8b": lambda m: _long(m, "<I"),
    b"G": lambda m: m.push(m.unpack(">d")),
    # Python 2 str: bytes (the CIFAR files' keys and data)
    b"U": _bytes("<B"),
    b"T": _bytes("<I"),
    b"C": _bytes("<B"),
    b"B": _bytes("<I"),
    b"\x8e": _bytes("<Q"),
    b"\x96": _bytes("<Q", bytearray),
    b"\x8c": _unicode("<B"),
    b"X": _unicode("<I"),
    b"\x8d": _unicode("<Q"),
    b"q": lambda m: _put(m, m.unpack("<B")),
    b"r": lambda m: _put(m, m.unpack("<I")),
    b"\x94": lambda m: _put(m, len(m.memo)),
    b"h": lambda m: _get(m, m.unpack("<B")),
    b"j": lambda m: _get(m, m.unpack("<I")),
    b"c": lambda m: _global(m, m.line(), m.line()),
    b"\x93": _stack_global,
    b"R": lambda m: m.push(m.reduce()),
    b"b": lambda m: m.build(),
}
