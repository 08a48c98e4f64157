"""DAP ``variables`` for a stop: C values with their C types, and Python objects.

Everything a reference (``variablesReference``) can expand to is kept in a
:class:`References` table that lives as long as the stop; the numbers start far above
what debugpy hands out (it uses object ids, below 2**47 on Linux), so a request can
be routed by its number alone.
"""

from __future__ import annotations

import ctypes
import itertools
import threading

from . import memory
from .ctype import CType, TypeSystem, buffer_format_type, decode_scalar

REF_BASE = 1 << 50
_counter = itertools.count(1)
_counter_lock = threading.Lock()

MAX_REPR = 200
MAX_CHILDREN = 100
PREVIEW = 8
_PY_TPFLAGS_TYPE_SUBCLASS = 1 << 31


def new_id() -> int:
    """A fresh number in cyscope's range (frames, references, threads share it)."""
    with _counter_lock:
        return REF_BASE + next(_counter)


def is_ours(number) -> bool:
    return isinstance(number, int) and number > REF_BASE


class References:
    """variablesReference -> a function giving that container's children (DAP variables)."""

    def __init__(self):
        self._table: dict[int, object] = {}

    def add(self, children) -> int:
        ref = new_id()
        self._table[ref] = children
        return ref

    def get(self, ref: int):
        return self._table.get(ref)

    def clear(self) -> None:
        self._table.clear()


def _short(text: str, limit: int = MAX_REPR) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_repr(obj, limit: int = MAX_REPR) -> str:
    try:
        return _short(repr(obj), limit)
    except Exception as exc:  # a broken __repr__ must not break the panel
        return f"<repr failed: {type(exc).__name__}: {exc}>"


# -- Python objects -------------------------------------------------------------------


def object_at(address: int):
    """The Python object at ``address`` if it looks like a live object, else raise ValueError.

    C locals typed ``PyObject *`` are NULL or valid in Cython's code, but a pointer read
    from a struct or through another pointer may be anything: check the header and its
    type's type before touching it.
    """
    if not address:
        raise ValueError("NULL")
    head = memory.read(address, 16)
    if head is None:
        raise ValueError("unreadable")
    refcnt = int.from_bytes(head[:8], "little", signed=True)
    tp = int.from_bytes(head[8:16], "little")
    if refcnt <= 0 or refcnt > 1 << 40 or not tp:
        raise ValueError("not an object")
    tp_head = memory.read(tp, 16)
    if tp_head is None:
        raise ValueError("not an object")
    meta = int.from_bytes(tp_head[8:16], "little")
    if meta != id(type):
        meta_flags = memory.read(meta + _tp_flags_offset(), 8)
        if meta_flags is None or not int.from_bytes(meta_flags, "little") & _PY_TPFLAGS_TYPE_SUBCLASS:
            raise ValueError("not an object")
    return ctypes.cast(address, ctypes.py_object).value


_TP_FLAGS_OFFSET = None


def _tp_flags_offset() -> int:
    """Offset of tp_flags in PyTypeObject, found by looking for type's own flags."""
    global _TP_FLAGS_OFFSET
    if _TP_FLAGS_OFFSET is None:
        want = type.__flags__
        raw = ctypes.string_at(id(type), 256)
        for off in range(0, 256 - 8, 8):
            if int.from_bytes(raw[off : off + 8], "little") == want:
                _TP_FLAGS_OFFSET = off
                break
        else:
            _TP_FLAGS_OFFSET = 168
    return _TP_FLAGS_OFFSET


def _numpy_array(obj) -> bool:
    t = type(obj)
    return (t.__module__ == "numpy" and t.__name__ in ("ndarray", "matrix", "memmap")) or (
        hasattr(obj, "__array_interface__") and hasattr(obj, "dtype") and hasattr(obj, "shape")
    )


def python_type_name(obj) -> str:
    if _numpy_array(obj):
        try:
            return f"ndarray[{obj.dtype}]"
        except Exception:
            return "ndarray"
    return type(obj).__name__


def python_summary(obj) -> str:
    if _numpy_array(obj):
        try:
            flat = obj.ravel()[:PREVIEW].tolist()
            more = ", …" if obj.size > PREVIEW else ""
            return _short(f"shape={tuple(obj.shape)} dtype={obj.dtype} [{', '.join(map(repr, flat))}{more}]")
        except Exception:
            pass
    return safe_repr(obj)


def python_children(obj) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    try:
        if _numpy_array(obj):
            out += [("shape", tuple(obj.shape)), ("dtype", obj.dtype), ("size", obj.size)]
            if obj.ndim:
                out += [(f"[{i}]", obj[i]) for i in range(min(len(obj), MAX_CHILDREN))]
            return out
        if isinstance(obj, dict):
            return [(safe_repr(k, 60), v) for k, v in itertools.islice(obj.items(), MAX_CHILDREN)]
        if isinstance(obj, (list, tuple)):
            return [(f"[{i}]", v) for i, v in enumerate(obj[:MAX_CHILDREN])]
        if isinstance(obj, (set, frozenset)):
            return [(f"<{i}>", v) for i, v in enumerate(itertools.islice(obj, MAX_CHILDREN))]
        if isinstance(obj, memoryview):
            return [("shape", obj.shape), ("format", obj.format)] + [
                (f"[{i}]", v) for i, v in enumerate(obj.tolist()[:MAX_CHILDREN])
            ]
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            out += [(k, v) for k, v in itertools.islice(attrs.items(), MAX_CHILDREN)]
        seen = {k for k, _ in out}
        for name in dir(obj):
            if len(out) >= MAX_CHILDREN:
                break
            if name.startswith("__") or name in seen:
                continue
            try:
                value = getattr(obj, name)
            except Exception:
                continue
            if callable(value):
                continue
            out.append((name, value))
    except Exception as exc:
        out.append(("<error>", f"{type(exc).__name__}: {exc}"))
    return out


_SCALARS = (int, float, complex, bool, str, bytes, type(None))


def python_expandable(obj) -> bool:
    if isinstance(obj, _SCALARS) or (callable(obj) and not hasattr(obj, "__dict__")):
        return False
    if isinstance(obj, (list, tuple, dict, set, frozenset)):
        return len(obj) > 0
    return True


def python_variable(refs: References, name: str, obj) -> dict:
    ref = (
        refs.add(lambda obj=obj: [python_variable(refs, n, v) for n, v in python_children(obj)])
        if python_expandable(obj)
        else 0
    )
    return {"name": name, "value": python_summary(obj), "type": python_type_name(obj), "variablesReference": ref}


# -- C values ----------------------------------------------------------------------------


class CValues:
    """Renders the C values of one probe module's types."""

    def __init__(self, types: TypeSystem, refs: References):
        self.types = types
        self.refs = refs

    def variable(self, name: str, t: CType, address: int, size: int | None = None) -> dict:
        self._type = None
        try:
            value, ref = self._render(t, address, size, name)
        except Exception as exc:
            value, ref = f"<{type(exc).__name__}: {exc}>", 0
        # A Python object shows its own type (the C type is just "object").
        shown = self._type if t.kind == "object" and self._type and t.display == "object" else t.display
        return {"name": name, "value": value, "type": shown, "variablesReference": ref}

    # Each renderer returns (value text, variablesReference).
    def _render(self, t: CType, address: int, size: int | None, name: str):
        kind = t.kind
        if kind in ("int", "bool", "float", "enum", "complex", "char"):
            raw = memory.read(address, t.size or size or 0)
            if raw is None:
                return "<unreadable>", 0
            v = decode_scalar(t, raw)
            if kind == "char":
                return (f"{v} {chr(v & 0xFF)!r}" if 32 <= (v & 0xFF) < 127 else str(v)), 0
            if kind == "enum":
                label = t.enum.get(str(v))
                return (f"{label} ({v})" if label else str(v)), 0
            if kind == "float":
                return repr(v), 0
            return str(v), 0
        if kind == "pointer":
            return self._pointer(t, address, name)
        if kind == "object":
            return self._object(t, address)
        if kind == "record":
            return self._record(t, address)
        if kind == "array":
            return self._array(t, address)
        if kind == "memview":
            return self._memview(address)
        if kind == "fnptr":
            raw = memory.read(address, 8)
            ptr = int.from_bytes(raw, "little") if raw else 0
            return (_symbol(ptr) if ptr else "NULL"), 0
        if kind == "cpp":
            return f"<C++ {t.display}>", 0
        raw = memory.read(address, size or 0) if size else None
        return (("0x" + raw.hex()) if raw else f"<{t.display}>"), 0

    def _pointer(self, t: CType, address: int, name: str):
        raw = memory.read(address, 8)
        if raw is None:
            return "<unreadable>", 0
        ptr = int.from_bytes(raw, "little")
        if not ptr:
            return "NULL", 0
        target = t.target
        if target is None or target.kind in ("void", "unknown", "fnptr", "cpp"):
            return f"0x{ptr:x}", 0
        if target.kind == "char":
            got = memory.read_c_string(ptr)
            if got is None:
                return f"0x{ptr:x} <unreadable>", 0
            text, cut = got
            return f"0x{ptr:x} {text.decode('utf-8', 'replace')!r}{'…' if cut else ''}", 0
        if target.kind in ("record", "array", "memview"):
            head = memory.read(ptr, 1)
            if head is None:
                return f"0x{ptr:x} <unreadable>", 0
            summary, ref = self._render(target, ptr, target.size, "*" + name)
            return f"0x{ptr:x} → {summary}", ref
        if target.kind == "pointer":
            inner = self.variable("*" + name, target, ptr)
            ref = self.refs.add(lambda inner=inner: [inner])
            return f"0x{ptr:x} → {inner['value']}", ref
        summary, _ = self._render(target, ptr, target.size, "*" + name)
        if summary == "<unreadable>":
            return f"0x{ptr:x} <unreadable>", 0
        child = {"name": "*" + name, "value": summary, "type": target.display, "variablesReference": 0}
        return f"0x{ptr:x} → {summary}", self.refs.add(lambda child=child: [child])

    def _object(self, t: CType, address: int):
        raw = memory.read(address, 8)
        if raw is None:
            return "<unreadable>", 0
        ptr = int.from_bytes(raw, "little")
        if not ptr:
            return "NULL", 0
        try:
            obj = object_at(ptr)
        except ValueError as exc:
            return f"0x{ptr:x} <{exc}>", 0
        record = t.target.record if t.target is not None else None
        self._type = python_type_name(obj)

        def children(obj=obj, ptr=ptr, record=record):
            out = self.record_fields(record, ptr) if record else []
            names = {v["name"] for v in out}
            out += [python_variable(self.refs, n, v) for n, v in python_children(obj) if n not in names]
            return out

        expandable = python_expandable(obj) or bool(record)
        return python_summary(obj), (self.refs.add(children) if expandable else 0)

    def record_fields(self, key: str, address: int) -> list[dict]:
        rec = self.types.records.get(key)
        layout = self.types.record_layout(key)
        if rec is None or layout is None:
            return []
        out = []
        for k, fld in enumerate(rec["fields"]):
            if 2 + 2 * k >= len(layout):
                break
            off, size = layout[1 + 2 * k], layout[2 + 2 * k]
            ft = self.types.resolve(fld["type"], fld.get("array", ""))
            name = fld["name"][len("__pyx_v_") :] if fld["name"].startswith("__pyx_v_") else fld["name"]
            out.append(self.variable(name, ft, address + off, size))
        return out

    def to_python(self, t: CType, address: int, size: int | None = None):
        """The value as Cython would convert it to Python (for ``evaluate`` and conditions)."""
        kind = t.kind
        if kind in ("int", "bool", "float", "enum", "complex", "char"):
            raw = memory.read(address, t.size or size or 0)
            return None if raw is None else decode_scalar(t, raw)
        if kind == "pointer":
            raw = memory.read(address, 8)
            ptr = int.from_bytes(raw, "little") if raw else 0
            if ptr and t.target is not None and t.target.kind == "char":
                got = memory.read_c_string(ptr, 1 << 16)
                return got[0] if got else ptr
            return ptr
        if kind == "object":
            raw = memory.read(address, 8)
            ptr = int.from_bytes(raw, "little") if raw else 0
            try:
                return object_at(ptr)
            except ValueError:
                return None
        if kind == "record":
            rec = self.types.records.get(t.record)
            layout = self.types.record_layout(t.record)
            if rec is None or layout is None:
                return None
            return {
                f["name"]: self.to_python(
                    self.types.resolve(f["type"], f.get("array", "")), address + layout[1 + 2 * k]
                )
                for k, f in enumerate(rec["fields"])
            }
        if kind == "array" and t.target is not None and t.target.size:
            return [self.to_python(t.target, address + i * t.target.size) for i in range(t.count)]
        if kind == "memview":
            return self._memview_object(address)
        return None

    def _memview_object(self, address: int):
        key = "__Pyx_memviewslice"
        layout = self.types.record_layout(key)
        if layout is None:
            return None
        fields = {f["cname"]: k for k, f in enumerate(self.types.records[key]["fields"])}
        raw = memory.read(address + layout[1 + 2 * fields["memview"]], 8)
        ptr = int.from_bytes(raw, "little") if raw else 0
        try:
            return object_at(ptr) if ptr else None
        except ValueError:
            return None

    def _record(self, t: CType, address: int):
        if memory.read(address, 1) is None:
            return "<unreadable>", 0
        fields = self.record_fields(t.record, address)
        inner = ", ".join(f"{v['name']}={v['value']}" for v in fields[:PREVIEW])
        more = ", …" if len(fields) > PREVIEW else ""
        return _short(f"{t.display} {{{inner}{more}}}"), self.refs.add(lambda f=fields: f)

    def _array(self, t: CType, address: int):
        elem = t.target
        if elem is None or not elem.size:
            return f"<{t.display}>", 0
        count = min(t.count, MAX_CHILDREN)
        items = [self.variable(f"[{i}]", elem, address + i * elem.size, elem.size) for i in range(count)]
        preview = ", ".join(v["value"] for v in items[:PREVIEW])
        more = ", …" if t.count > PREVIEW else ""
        return _short(f"[{preview}{more}]"), self.refs.add(lambda items=items: items)

    def _memview(self, address: int):
        key = "__Pyx_memviewslice"
        layout = self.types.record_layout(key)
        if layout is None:
            return "<memoryview>", 0
        fields = {f["cname"]: k for k, f in enumerate(self.types.records[key]["fields"])}

        def word(fname: str, index: int = 0) -> int:
            off = layout[1 + 2 * fields[fname]] + 8 * index
            raw = memory.read(address + off, 8)
            return int.from_bytes(raw, "little", signed=True) if raw else 0

        mv_ptr = word("memview")
        if not mv_ptr:
            return "<not initialised>", 0
        try:
            mv_obj = object_at(mv_ptr)
            view = memoryview(mv_obj)
            ndim, fmt, itemsize = view.ndim, view.format, view.itemsize
            base = getattr(mv_obj, "base", None)
        except Exception as exc:
            return f"<memoryview: {exc}>", 0
        data = word("data")
        shape = [word("shape", d) for d in range(ndim)]
        strides = [word("strides", d) for d in range(ndim)]
        dtype = buffer_format_type(fmt)
        elem = self.types.resolve(dtype if dtype != "bint" else "int", "", bint=dtype == "bint")
        if elem.kind == "unknown":
            elem = CType("unknown", fmt, itemsize)

        def element(index: tuple) -> str:
            addr = data + sum(i * s for i, s in zip(index, strides))
            v = self.variable("", elem, addr, itemsize)
            return v["value"]

        first = []
        if ndim and all(shape):
            for i in range(min(shape[0], PREVIEW)):
                first.append(element((i,) + (0,) * (ndim - 1)) if ndim == 1 else "…")
        preview = ", ".join(first) + (", …" if ndim and shape[0] > PREVIEW else "") if ndim == 1 else ""
        summary = f"{dtype}[{', '.join(':' for _ in range(ndim))}] shape={tuple(shape)}" + (
            f" [{preview}]" if preview else ""
        )

        def rows(prefix: tuple, dim: int) -> list[dict]:
            out = []
            for i in range(min(shape[dim], MAX_CHILDREN)):
                idx = (*prefix, i)
                if dim == ndim - 1:
                    out.append(
                        {
                            "name": f"[{', '.join(map(str, idx))}]",
                            "value": element(idx),
                            "type": dtype,
                            "variablesReference": 0,
                        }
                    )
                else:
                    out.append(
                        {
                            "name": f"[{', '.join(map(str, idx))}]",
                            "value": f"{dtype}[{', '.join(':' for _ in range(ndim - dim - 1))}]",
                            "type": "row",
                            "variablesReference": self.refs.add(lambda idx=idx, d=dim: rows(idx, d + 1)),
                        }
                    )
            return out

        def children():
            out = [
                {"name": "shape", "value": str(tuple(shape)), "type": "tuple", "variablesReference": 0},
                {"name": "strides", "value": str(tuple(strides)), "type": "tuple", "variablesReference": 0},
                {"name": "dtype", "value": dtype, "type": "str", "variablesReference": 0},
            ]
            if base is not None:
                out.append(python_variable(self.refs, "base", base))
            return out + (rows((), 0) if ndim else [])

        self.last_memview = (mv_obj, data, shape, strides, fmt)
        return _short(summary), self.refs.add(children)


def _symbol(ptr: int) -> str:
    try:
        from .stack import symbol_name

        name = symbol_name(ptr)
    except Exception:
        name = None
    return f"0x{ptr:x} <{name}>" if name else f"0x{ptr:x}"
