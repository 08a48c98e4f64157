"""Read a shared object's function symbols and DWARF line table in Python.

The fallback of the symboliser when ``addr2line`` is not installed: enough
of ELF (section headers, ``.symtab``) and of DWARF 2-5 (the ``.debug_line``
programs) to map an address of a ``%%cython`` module to (function, C file,
C line). It does not read inlining (``.debug_info``): an address inside an
inlined helper maps to the helper's own line, and the caller then resolves
it (see ``_symbols``). Little-endian 64-bit objects only (x86_64, aarch64).
"""

from __future__ import annotations

import bisect
import os
import struct
import zlib

SHT_SYMTAB = 2
SHF_COMPRESSED = 0x800
STT_FUNC = 2


class ElfError(ValueError):
    pass


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _sleb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, pos


def _cstr(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode("utf-8", "replace"), end + 1


class Elf:
    """Sections of one object file, read once."""

    def __init__(self, path: str):
        with open(path, "rb") as fh:
            self.data = fh.read()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            raise ElfError(f"{path}: not a little-endian 64-bit ELF object")
        (shoff,) = struct.unpack_from("<Q", d, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
        self.sections = []
        for i in range(shnum):
            name, typ, flags, _addr, off, size, link, _info, _align, entsize = struct.unpack_from(
                "<IIQQQQIIQQ", d, shoff + i * shentsize
            )
            self.sections.append([name, typ, flags, off, size, link, entsize])
        names_off = self.sections[shstrndx][3]
        self.by_name = {}
        for sec in self.sections:
            sec[0], _ = _cstr(d, names_off + sec[0])
            self.by_name[sec[0]] = sec

    def section(self, name: str) -> bytes | None:
        sec = self.by_name.get(name)
        if sec is None:
            return None
        _name, _typ, flags, off, size, _link, _entsize = sec
        raw = self.data[off : off + size]
        if flags & SHF_COMPRESSED:  # Elf64_Chdr, then zlib
            ch_type, _res, ch_size, _align = struct.unpack_from("<IIQQ", raw, 0)
            if ch_type != 1:
                raise ElfError(f"section {name}: compression type {ch_type} not supported")
            raw = zlib.decompress(raw[24:])
            if len(raw) != ch_size:
                raise ElfError(f"section {name}: bad compressed size")
        return raw

    def functions(self) -> list[tuple[int, int, str]]:
        """(start, size, name) of every function symbol, sorted by start."""
        out = []
        for sec in self.sections:
            if sec[1] != SHT_SYMTAB:
                continue
            _name, _typ, _flags, off, size, link, entsize = sec
            strtab = self.sections[link][3]
            for pos in range(off, off + size, entsize or 24):
                st_name, st_info, _other, _shndx, value, sym_size = struct.unpack_from("<IBBHQQ", self.data, pos)
                if st_info & 0xF == STT_FUNC and value:
                    out.append((value, sym_size, _cstr(self.data, strtab + st_name)[0]))
        out.sort()
        return out

    def line_rows(self) -> list[tuple[int, str, int, bool]]:
        """(address, file, line, end of sequence) of every line-table row, by address."""
        data = self.section(".debug_line")
        if not data:
            return []
        line_str = self.section(".debug_line_str") or b""
        debug_str = self.section(".debug_str") or b""
        rows: list[tuple[int, str, int, bool]] = []
        pos = 0
        while pos < len(data):
            pos = _line_program(data, pos, line_str, debug_str, rows)
        rows.sort(key=lambda r: (r[0], not r[3]))
        return rows


# DWARF forms that can describe a directory or file entry (DWARF 5).
_FORM_SIZES = {0x0B: 1, 0x05: 2, 0x06: 4, 0x07: 8, 0x1E: 16}


def _read_form(form: int, data: bytes, pos: int, offset_size: int, line_str: bytes, debug_str: bytes):
    if form == 0x08:  # DW_FORM_string
        return _cstr(data, pos)
    if form in (0x1F, 0x0E):  # DW_FORM_line_strp, DW_FORM_strp
        fmt = "<I" if offset_size == 4 else "<Q"
        (off,) = struct.unpack_from(fmt, data, pos)
        table = line_str if form == 0x1F else debug_str
        return _cstr(table, off)[0], pos + offset_size
    if form == 0x0F:  # DW_FORM_udata
        return _uleb(data, pos)
    if form in _FORM_SIZES:
        size = _FORM_SIZES[form]
        return int.from_bytes(data[pos : pos + size], "little"), pos + size
    if form == 0x09:  # DW_FORM_block
        size, pos = _uleb(data, pos)
        return None, pos + size
    raise ElfError(f"DWARF form {form:#x} in a line table header is not supported")


def _entries(data, pos, offset_size, line_str, debug_str):
    """DWARF 5 directory or file name entries: [{content type: value}]."""
    count = data[pos]
    pos += 1
    formats = []
    for _ in range(count):
        kind, pos = _uleb(data, pos)
        form, pos = _uleb(data, pos)
        formats.append((kind, form))
    n, pos = _uleb(data, pos)
    out = []
    for _ in range(n):
        entry = {}
        for kind, form in formats:
            entry[kind], pos = _read_form(form, data, pos, offset_size, line_str, debug_str)
        out.append(entry)
    return out, pos


def _line_program(data: bytes, pos: int, line_str: bytes, debug_str: bytes, rows: list) -> int:
    """Run one unit's line-number program; returns where the next unit starts."""
    (length,) = struct.unpack_from("<I", data, pos)
    offset_size = 4
    pos += 4
    if length == 0xFFFFFFFF:
        (length,) = struct.unpack_from("<Q", data, pos)
        offset_size = 8
        pos += 8
    end = pos + length
    (version,) = struct.unpack_from("<H", data, pos)
    pos += 2
    if version < 2 or version > 5:
        return end
    if version >= 5:
        pos += 2  # address_size, segment_selector_size
    header_length = int.from_bytes(data[pos : pos + offset_size], "little")
    pos += offset_size
    program = pos + header_length
    min_inst = data[pos]
    pos += 1
    if version >= 4:
        pos += 1  # maximum_operations_per_instruction (VLIW only)
    default_is_stmt = data[pos]
    line_base = struct.unpack_from("<b", data, pos + 1)[0]
    line_range = data[pos + 2]
    opcode_base = data[pos + 3]
    lengths = list(data[pos + 4 : pos + 4 + opcode_base - 1])
    pos += 4 + opcode_base - 1
    if version >= 5:
        dirs, pos = _entries(data, pos, offset_size, line_str, debug_str)
        directories = [d.get(1, "") for d in dirs]
        files_raw, pos = _entries(data, pos, offset_size, line_str, debug_str)
        files = []
        for f in files_raw:
            name, d = f.get(1, ""), f.get(2, 0)
            base = directories[d] if d < len(directories) else ""
            files.append(name if os.path.isabs(name) else os.path.join(base, name))
    else:
        directories = [""]
        while data[pos]:
            d, pos = _cstr(data, pos)
            directories.append(d)
        pos += 1
        files = [""]  # DWARF < 5 numbers files from 1
        while data[pos]:
            name, pos = _cstr(data, pos)
            d, pos = _uleb(data, pos)
            _, pos = _uleb(data, pos)
            _, pos = _uleb(data, pos)
            base = directories[d] if d < len(directories) else ""
            files.append(name if os.path.isabs(name) else os.path.join(base, name))
    pos = program

    def reset():
        return {"address": 0, "file": 1, "line": 1, "is_stmt": default_is_stmt}

    st = reset()

    def emit(end_seq=False):
        f = st["file"]
        rows.append((st["address"], files[f] if 0 <= f < len(files) else "??", st["line"], end_seq))

    while pos < end:
        op = data[pos]
        pos += 1
        if op >= opcode_base:  # special opcode
            adj = op - opcode_base
            st["address"] += (adj // line_range) * min_inst
            st["line"] += line_base + adj % line_range
            emit()
        elif op == 0:  # extended
            size, pos = _uleb(data, pos)
            sub = data[pos]
            if sub == 1:  # end_sequence
                emit(end_seq=True)
                st = reset()
            elif sub == 2:  # set_address
                st["address"] = int.from_bytes(data[pos + 1 : pos + size], "little")
            elif sub == 3 and version < 5:  # define_file
                name, _ = _cstr(data, pos + 1)
                files.append(name)
            pos += size
        elif op == 1:  # copy
            emit()
        elif op == 2:  # advance_pc
            v, pos = _uleb(data, pos)
            st["address"] += v * min_inst
        elif op == 3:  # advance_line
            v, pos = _sleb(data, pos)
            st["line"] += v
        elif op == 4:  # set_file
            st["file"], pos = _uleb(data, pos)
        elif op == 8:  # const_add_pc
            st["address"] += ((255 - opcode_base) // line_range) * min_inst
        elif op == 9:  # fixed_advance_pc
            (v,) = struct.unpack_from("<H", data, pos)
            st["address"] += v
            pos += 2
        else:  # other standard opcodes: skip their operands
            for _ in range(lengths[op - 1] if op - 1 < len(lengths) else 0):
                _, pos = _uleb(data, pos)
    return end


class LineTable:
    """Addresses of one object to (function, file, line), from its own file."""

    def __init__(self, path: str):
        elf = Elf(path)
        self.rows = elf.line_rows()
        self.starts = [r[0] for r in self.rows]
        self.funcs = elf.functions()
        self.func_starts = [f[0] for f in self.funcs]

    def function(self, address: int) -> str | None:
        k = bisect.bisect_right(self.func_starts, address) - 1
        if k >= 0:
            start, size, name = self.funcs[k]
            if address < start + max(size, 1):
                return name
        return None

    def lookup(self, address: int) -> tuple[str, str, int]:
        """(function, file, line) of an address; '??' and 0 where unknown."""
        func = self.function(address) or "??"
        k = bisect.bisect_right(self.starts, address) - 1
        if k < 0 or self.rows[k][3]:  # before every row, or past a sequence's end
            return func, "??", 0
        _addr, path, line, _end = self.rows[k]
        return func, path, line
