"""C types of a probed cell, and the values their bytes hold.

Types come from the probe map (what :mod:`.generated_c` read in the generated C);
sizes and field offsets of structs and snapshots come from tables the compiler filled
(``sizeof``/``offsetof``), so only the sizes of C's own scalar types are assumed here
(LP64 Linux, the platforms cyscope supports).
"""

from __future__ import annotations

import ctypes
import re
import struct
from dataclasses import dataclass, field

from . import memory
from .generated_c import cython_name

_QUALIFIERS = re.compile(r"\b(?:const|volatile|CYTHON_UNUSED|__restrict__|__restrict|restrict|register|static)\b")

# name -> (signed, size) for integer types (LP64).
_INTS = {
    "char": (True, 1),
    "signed char": (True, 1),
    "unsigned char": (False, 1),
    "short": (True, 2),
    "short int": (True, 2),
    "signed short": (True, 2),
    "unsigned short": (False, 2),
    "unsigned short int": (False, 2),
    "int": (True, 4),
    "signed": (True, 4),
    "signed int": (True, 4),
    "unsigned": (False, 4),
    "unsigned int": (False, 4),
    "long": (True, 8),
    "long int": (True, 8),
    "signed long": (True, 8),
    "unsigned long": (False, 8),
    "unsigned long int": (False, 8),
    "long long": (True, 8),
    "long long int": (True, 8),
    "signed long long": (True, 8),
    "unsigned long long": (False, 8),
    "unsigned long long int": (False, 8),
    "PY_LONG_LONG": (True, 8),
    "unsigned PY_LONG_LONG": (False, 8),
    "Py_ssize_t": (True, 8),
    "Py_hash_t": (True, 8),
    "ssize_t": (True, 8),
    "size_t": (False, 8),
    "ptrdiff_t": (True, 8),
    "intptr_t": (True, 8),
    "uintptr_t": (False, 8),
    "Py_UCS4": (False, 4),
    "Py_UCS2": (False, 2),
    "Py_UCS1": (False, 1),
    "Py_UNICODE": (True, 4),
    "wchar_t": (True, 4),
    "_Bool": (False, 1),
    "bool": (False, 1),
    "npy_intp": (True, 8),
    "npy_uintp": (False, 8),
    "npy_bool": (False, 1),
    "npy_byte": (True, 1),
    "npy_ubyte": (False, 1),
    "npy_short": (True, 2),
    "npy_ushort": (False, 2),
    "npy_int": (True, 4),
    "npy_uint": (False, 4),
    "npy_long": (True, 8),
    "npy_ulong": (False, 8),
    "npy_longlong": (True, 8),
    "npy_ulonglong": (False, 8),
    "npy_half": (False, 2),
    "npy_hash_t": (True, 8),
}
for _bits in (8, 16, 32, 64):
    _INTS[f"int{_bits}_t"] = (True, _bits // 8)
    _INTS[f"uint{_bits}_t"] = (False, _bits // 8)
    _INTS[f"npy_int{_bits}"] = (True, _bits // 8)
    _INTS[f"npy_uint{_bits}"] = (False, _bits // 8)

_FLOATS = {
    "float": 4,
    "double": 8,
    "long double": ctypes.sizeof(ctypes.c_longdouble),
    "npy_float": 4,
    "npy_double": 8,
    "npy_longdouble": ctypes.sizeof(ctypes.c_longdouble),
    "npy_float32": 4,
    "npy_float64": 8,
    "Py_complex": 16,
}

_OBJECT_STRUCT = re.compile(
    r"^(?:struct\s+)?(?:__pyx_obj_\w+|__pyx_memoryview_obj|__pyx_array_obj|_object|Py\w*Object)$"
)
_DISPLAY = {
    "PY_LONG_LONG": "long long",
    "unsigned PY_LONG_LONG": "unsigned long long",
    "PyObject": "object",
    "PyArrayObject": "ndarray",
}


@dataclass
class CType:
    kind: str  # int char bool float complex enum pointer record array object memview cpp fnptr void unknown
    display: str
    size: int | None = None
    signed: bool = True
    target: CType | None = None  # pointer / array element
    count: int = 0  # array length
    record: str | None = None  # probe map record key
    enum: dict = field(default_factory=dict)


def _clean(ctype: str) -> str:
    return " ".join(_QUALIFIERS.sub(" ", ctype).split())


class TypeSystem:
    """Resolves the C type strings of one probe map."""

    def __init__(self, probe_map: dict, layouts: list[list[int]]):
        self.map = probe_map
        self.layouts = layouts
        self.records = probe_map.get("records", {})
        self.typedefs = probe_map.get("typedefs", {})
        self.enums = probe_map.get("enums", {})
        self._cache: dict[tuple[str, str], CType] = {}

    def record_layout(self, key: str) -> list[int] | None:
        rec = self.records.get(key)
        if rec is None or rec["layout"] >= len(self.layouts):
            return None
        return self.layouts[rec["layout"]]

    def resolve(self, ctype: str, array: str = "", bint: bool = False) -> CType:
        key = (ctype + array, "b" if bint else "")
        hit = self._cache.get(key)
        if hit is None:
            hit = self._resolve(ctype, array, bint)
            self._cache[key] = hit
        return hit

    def _resolve(self, ctype: str, array: str, bint: bool, depth: int = 0) -> CType:
        if array:
            dims = [int(d) if d.strip().isdigit() else 0 for d in re.findall(r"\[([^\]]*)\]", array)]
            elem = self._resolve(ctype, "".join(f"[{d}]" for d in dims[1:]), False, depth + 1)
            size = elem.size * dims[0] if elem.size is not None else None
            return CType("array", f"{elem.display}[{dims[0]}]", size, target=elem, count=dims[0])
        if "(*)" in ctype:
            return CType("fnptr", ctype.replace("(*)", "(*)"), 8)
        clean = _clean(ctype)
        if "::" in clean or "<" in clean:
            return CType("cpp", clean, None)
        if clean.endswith("*"):
            target = self._resolve(clean[:-1].strip(), "", False, depth + 1)
            if target.kind == "char":
                return CType("pointer", f"{'const ' if 'const' in ctype else ''}{target.display} *", 8, target=target)
            if target.kind in ("object_struct",):
                return CType("object", target.display, 8, target=target)
            return CType("pointer", f"{target.display} *", 8, target=target)
        if bint:
            return CType("bool", "bint", _INTS.get(clean, (True, 4))[1])
        if clean in ("void",):
            return CType("void", "void", None)
        if "_Complex" in clean:
            base = clean.replace("_Complex", "").strip() or "double"
            part = _FLOATS.get(base, 8)
            return CType("complex", f"{base} complex", 2 * part)
        if clean in _INTS:
            signed, size = _INTS[clean]
            kind = "char" if clean in ("char", "signed char", "unsigned char") else "int"
            if clean in ("_Bool", "bool", "npy_bool"):
                kind = "bool"
            return CType(kind, _DISPLAY.get(clean, clean), size, signed)
        if clean in _FLOATS:
            return CType("float", clean, _FLOATS[clean])
        if clean == "__Pyx_memviewslice":
            return CType("memview", "memoryview", None, record="__Pyx_memviewslice")
        if clean in self.enums or clean.startswith("enum "):
            return CType("enum", cython_name(clean.split()[-1]), 4, True, enum=self.enums.get(clean, {}))
        if _OBJECT_STRUCT.match(clean):
            name = clean.split()[-1]
            display = _DISPLAY.get(name) or cython_name(name)
            rec = clean if clean in self.records else None
            return CType("object_struct", display, None, record=rec)
        if clean in self.records:
            rec = self.records[clean]
            if {f["cname"] for f in rec["fields"]} == {"real", "imag"}:
                return CType("complex", cython_name(clean.split()[-1]), None, record=clean)
            layout = self.record_layout(clean)
            return CType("record", rec["name"], layout[0] if layout else None, record=clean)
        if clean in self.typedefs and depth < 20:
            inner = self._resolve(self.typedefs[clean], "", False, depth + 1)
            if inner.kind in ("int", "float", "char", "record", "enum", "complex", "bool"):
                inner = CType(**{**inner.__dict__, "display": cython_name(clean)})
            return inner
        if clean.startswith("__pyx_t_") and clean.endswith("_complex"):
            return CType("complex", clean, 16)
        return CType("unknown", cython_name(clean), None)


def decode_scalar(t: CType, raw: bytes):
    """The Python value of an int/char/bool/float/enum/complex/pointer's bytes."""
    if t.kind in ("int", "char", "enum"):
        return int.from_bytes(raw[: t.size], "little", signed=t.signed)
    if t.kind == "bool":
        return bool(int.from_bytes(raw[: t.size], "little"))
    if t.kind == "float":
        if t.size == 4:
            return struct.unpack("<f", raw[:4])[0]
        if t.size == 8:
            return struct.unpack("<d", raw[:8])[0]
        return float(
            ctypes.c_longdouble.from_buffer_copy(raw[: t.size].ljust(ctypes.sizeof(ctypes.c_longdouble), b"\0")).value
        )
    if t.kind == "complex":
        half = (t.size or 16) // 2
        fmt = "<f" if half == 4 else "<d"
        return complex(struct.unpack(fmt, raw[:half])[0], struct.unpack(fmt, raw[half : 2 * half])[0])
    if t.kind in ("pointer", "object", "fnptr"):
        return int.from_bytes(raw[:8], "little")
    raise TypeError(t.kind)


def read_scalar(t: CType, address: int):
    raw = memory.read(address, t.size or 0)
    return None if raw is None else decode_scalar(t, raw)


_FORMAT_TYPES = {
    "b": "signed char",
    "B": "unsigned char",
    "h": "short",
    "H": "unsigned short",
    "i": "int",
    "I": "unsigned int",
    "l": "long",
    "L": "unsigned long",
    "q": "long long",
    "Q": "unsigned long long",
    "n": "Py_ssize_t",
    "N": "size_t",
    "f": "float",
    "d": "double",
    "g": "long double",
    "?": "bint",
    "Zf": "float complex",
    "Zd": "double complex",
}


def buffer_format_type(fmt: str) -> str:
    """Cython's name for a buffer format character ('d' -> 'double')."""
    return _FORMAT_TYPES.get(fmt.lstrip("@=<>!"), fmt)
