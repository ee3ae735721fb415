#!/usr/bin/env python3
"""Independent reader for the `.laq` file format, version 1.x.

Written from spec/FORMAT.md alone (standard library + numpy). Every reader rule of the
spec is enforced; the comments cite the rule number next to the code that enforces it.

Library use::

    from laq_reader import LaqFile, LaqError
    with LaqFile("model.laq") as f:
        print(f.version, f.sha256)
        for t in f.tensors:
            arr = f.decode(t["name"])       # numpy float32 array of the tensor's shape
        problems = f.verify()              # [] when the file is valid

    verify_path("model.laq")               # like verify(), but also catches open errors

CLI::

    python3 tools/laq_reader.py FILE                 # inspect
    python3 tools/laq_reader.py FILE --verify        # exit 0 valid, 1 invalid
    python3 tools/laq_reader.py FILE --dump OUT.npz  # decodable tensors -> npz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import struct
import sys
import zipfile
import unicodedata
import zlib

import numpy as np

__all__ = ["LaqError", "LaqFile", "open_laq", "verify_path", "SUPPORTED_MAJOR", "SUPPORTED_MINOR"]

# --------------------------------------------------------------------------------------------
# Constants (spec §2, §3, §4.1, §5, §7, §8)
# --------------------------------------------------------------------------------------------

SUPPORTED_MAJOR = 1
SUPPORTED_MINOR = 0

MAGIC = b"\x89LAQ\r\n\x1a\n"          # §2 header magic
END_MAGIC = b"LAQEND\r\n"             # §3 trailer magic
HEADER_SIZE = 64
TRAILER_SIZE = 40
HEADER_STRUCT = struct.Struct("<8sHHIQQQQIQI")   # §2 table: 8+2+2+4+8+8+8+8+4+8+4 = 64 bytes
assert HEADER_STRUCT.size == HEADER_SIZE

MAX_MANIFEST = 67_108_864             # §2 / §4.1: 64 MiB
MIN_MANIFEST = 2                      # §2: 2 <= manifest_length ("{}")
MAX_DEPTH = 128                       # §4.1 array/object nesting depth (top-level object = 1)
MAX_TENSORS = 1_048_576               # §4.1
MAX_INT = 2**53 - 1                   # §4.1 integer range [0, 2^53 - 1]
MAX_RANK = 8                          # §5.2
MAX_NAME_BYTES = 256                  # §5.1

KNOWN_ENCODINGS = ("float32", "float16", "bfloat16", "codebook")   # §6
KNOWN_COMPRESSIONS = ("none", "zlib")                             # §7
KNOWN_FEATURES: frozenset = frozenset()                           # §8: 1.0 defines none
KNOWN_DTYPES = ("float32", "float16", "bfloat16", "float64")      # §5 `dtype`
KNOWN_ROLES = ("weight", "optimizer")                             # §5 `role`


def align64(x: int) -> int:
    """§1: the smallest multiple of 64 that is >= x."""
    return (x + 63) // 64 * 64


class LaqError(Exception):
    """A violation of the .laq spec. `rule` is the spec rule number (e.g. "2.3")."""

    def __init__(self, rule: str, message: str):
        super().__init__(f"[{rule}] {message}")
        self.rule = rule
        self.message = message


# --------------------------------------------------------------------------------------------
# Small validation helpers
# --------------------------------------------------------------------------------------------

def _is_int(v) -> bool:
    """§4.1: an "integer" is a JSON integer in [0, 2^53 - 1]. JSON true/false are not integers
    (Python's bool is an int subclass) and neither is a number written with a fraction or an
    exponent (json parses those to float)."""
    return type(v) is int and 0 <= v <= MAX_INT


def _json_depth(root) -> int:
    """Nesting depth of arrays/objects, computed iteratively (top-level container = 1)."""
    best = 0
    stack = [(root, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            best = max(best, d)
            stack.extend((c, d + 1) for c in v.values())
        elif isinstance(v, list):
            best = max(best, d)
            stack.extend((c, d + 1) for c in v)
    return best


def _parse_int(text: str):
    """JSON integer literal -> int. §4.0: a number whose magnitude overflows a double is refused
    (the Swift reader reads integers past Int64 as doubles), so integers of 2^1024 and more
    (and literals too long for Python's int-conversion guard) are refused here too."""
    if len(text) > 400:
        raise ValueError(f"number {text[:40]}... is out of a double's range")
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise ValueError(f"number {text[:40]}... is out of a double's range") from None
    return value


def _reject_constant(name):
    # Python's json accepts NaN / Infinity / -Infinity, which are not RFC 8259 JSON.
    raise ValueError(f"invalid JSON literal {name}")


def _parse_float(text: str) -> float:
    """JSON number with fraction or exponent -> float; one that overflows a double (1e999,
    which Python reads as inf) is refused, as the Swift reader refuses it."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of a double's range")
    return value


def _unique_members(pairs):
    """object_pairs_hook: §4 — no object has two members with the same key, where keys are
    compared as canonically equivalent Unicode (NFC), as the Swift reader compares strings.
    Python's json would keep the last of two; another reader the first."""
    seen = set()
    for key, _ in pairs:
        canonical = unicodedata.normalize("NFC", key)
        if canonical in seen:
            raise ValueError(f"duplicate key {key!r} in one object")
        seen.add(canonical)
    return dict(pairs)


def _check_strings(root) -> None:
    """§4: the text is UTF-8; an escaped lone surrogate ("\\ud800"), which Python's json decodes
    into a str that is not Unicode text, is refused."""
    stack = [root]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            v.encode("utf-8")           # raises UnicodeEncodeError on a lone surrogate
        elif isinstance(v, dict):
            for k, c in v.items():
                k.encode("utf-8")
                stack.append(c)
        elif isinstance(v, list):
            stack.extend(v)


def _half_to_float_table() -> np.ndarray:
    """uint16 bit pattern -> float32 bit pattern for IEEE binary16, exact, NaN payload kept.

    numpy's float16 -> float32 conversion is exact for every finite value and infinity; NaNs are
    rebuilt by hand (sign, all-ones exponent, mantissa << 13) so that the result does not
    depend on whether numpy uses a hardware path that might quiet signalling NaNs."""
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    out = h.view(np.float16).astype(np.float32).view(np.uint32).copy()
    h32 = h.astype(np.uint32)
    nan = ((h32 & 0x7C00) == 0x7C00) & ((h32 & 0x03FF) != 0)
    out[nan] = ((h32[nan] & 0x8000) << 16) | 0x7F800000 | ((h32[nan] & 0x03FF) << 13)
    return out


_HALF_TABLE: np.ndarray | None = None


def _base3_table() -> np.ndarray:
    """§6.4: byte value v < 243 -> its five base-3 digits c0..c4 (c0 least significant)."""
    v = np.arange(256, dtype=np.int32)
    digits = np.empty((256, 5), dtype=np.uint8)
    for j in range(5):
        digits[:, j] = v % 3
        v = v // 3
    return digits


_BASE3_TABLE = _base3_table()


# --------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------

def _shaped(values: np.ndarray, shape: list) -> np.ndarray:
    """`values` in `shape`; an empty tensor whose other dimensions are too large for numpy's size
    arithmetic (e.g. [2**32, 2**32, 0], valid per 5.2) stays a flat empty array."""
    try:
        return values.reshape(shape)
    except ValueError:
        if values.size == 0:
            return values.reshape(-1)
        raise


class LaqFile:
    """An opened .laq file. The constructor checks every structural rule (§2–§8) except the
    SHA-256 of the whole file and the per-tensor CRC-32s, which are checked by `verify()`
    (§3.2, §5.5) and, for the CRC, also by `decode()`.

    Attributes: path, size, version (major, minor), sha256 (hex of the trailer hash),
    manifest (dict), tensors (list of the manifest's tensor dicts, table order),
    required_features, data_offset, data_length, trailer_offset."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._mm = None
        self._fh = None
        self._crc_ok: dict[int, bool] = {}
        try:
            self._fh = open(self.path, "rb")
            self.size = os.fstat(self._fh.fileno()).st_size
        except OSError as e:
            self.close()
            raise LaqError("io", f"cannot open {self.path!r}: {e}") from None
        try:
            # 2.1: shorter than header + trailer -> truncated (this also keeps mmap off empty files).
            if self.size < HEADER_SIZE + TRAILER_SIZE:
                raise LaqError("2.1", f"file is {self.size} bytes, shorter than the "
                                      f"{HEADER_SIZE + TRAILER_SIZE}-byte header + trailer: truncated")
            try:
                self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as e:
                raise LaqError("io", f"cannot map {self.path!r}: {e}") from None
            self._parse_header()
            self._parse_manifest()
            self._parse_tensor_table()
        except BaseException:
            self.close()
            raise

    # -- resource handling ------------------------------------------------------------------

    def close(self):
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _bytes(self, start: int, end: int) -> bytes:
        """File bytes [start, end); callers have already bounds-checked against self.size."""
        if not (0 <= start <= end <= self.size):
            raise LaqError("5.3", f"internal: byte range [{start}, {end}) outside the file")
        if self._mm is None:
            raise LaqError("io", "file is closed")
        return self._mm[start:end]

    # -- §2 header, §3 trailer ----------------------------------------------------------------

    def _parse_header(self):
        hdr = self._bytes(0, HEADER_SIZE)
        (magic, major, minor, flags, manifest_offset, manifest_length, data_offset,
         data_length, manifest_crc, reserved, header_crc) = HEADER_STRUCT.unpack(hdr)

        # 2.2 magic, compared literally.
        if magic != MAGIC:
            raise LaqError("2.2", f"bad magic {magic.hex(' ')} (expected {MAGIC.hex(' ')})")

        # 2.3 major version. Checked before the header CRC so that a file from another major
        # version (whose header may be laid out differently) gets a version error.
        if major == 0:
            raise LaqError("2.3", f"unsupported version {major}.{minor}: major 0 is not a "
                                  f"released version (newest supported: "
                                  f"{SUPPORTED_MAJOR}.{SUPPORTED_MINOR})")
        if major == 0x0100:
            raise LaqError("2.3", f"byte-swapped header: major field reads 256 (0x0100), the "
                                  f"byte-swapped 1; the file was written big-endian or its "
                                  f"bytes were swapped (endianness error)")
        if major != SUPPORTED_MAJOR:
            raise LaqError("2.3", f"unsupported version {major}.{minor}: this reader supports "
                                  f"major version {SUPPORTED_MAJOR} (newest "
                                  f"{SUPPORTED_MAJOR}.{SUPPORTED_MINOR})")
        # 2.4 any minor is accepted.

        # 2.5 flags and reserved MUST be 0.
        if flags != 0:
            raise LaqError("2.5", f"header flags = {flags:#x}, must be 0")
        if reserved != 0:
            raise LaqError("2.5", f"header reserved field = {reserved:#x}, must be 0")

        # 2.6 header CRC over bytes 0..59.
        crc = zlib.crc32(hdr[:60])
        if crc != header_crc:
            raise LaqError("2.6", f"header CRC-32 mismatch: stored {header_crc:#010x}, "
                                  f"computed {crc:#010x}")

        # 2.7 layout. Python integers do not overflow, so every sum below is exact; a value
        # that would overflow a 64-bit sum simply fails the comparison with the file size.
        if manifest_offset != HEADER_SIZE:
            raise LaqError("2.7", f"manifest_offset = {manifest_offset}, must be {HEADER_SIZE}")
        if not (MIN_MANIFEST <= manifest_length <= MAX_MANIFEST):
            raise LaqError("2.7", f"manifest_length = {manifest_length} outside "
                                  f"[{MIN_MANIFEST}, {MAX_MANIFEST}]")
        want = align64(HEADER_SIZE + manifest_length)
        if data_offset != want:
            raise LaqError("2.7", f"data_offset = {data_offset}, must be align64(64 + "
                                  f"manifest_length) = {want}")
        if data_length % 64 != 0:
            raise LaqError("2.7", f"data_length = {data_length} is not a multiple of 64")
        expected_size = data_offset + data_length + TRAILER_SIZE
        if self.size < expected_size:
            raise LaqError("2.7", f"truncated: file is {self.size} bytes, header implies "
                                  f"{expected_size}")
        if self.size > expected_size:
            raise LaqError("2.7", f"trailing bytes: file is {self.size} bytes, header implies "
                                  f"{expected_size} ({self.size - expected_size} extra)")

        self.version = (major, minor)
        self.manifest_length = manifest_length
        self.manifest_crc32 = manifest_crc
        self.data_offset = data_offset
        self.data_length = data_length
        self.trailer_offset = data_offset + data_length

        # 3.1 end magic, compared literally.
        trailer = self._bytes(self.trailer_offset, self.size)
        if trailer[32:] != END_MAGIC:
            raise LaqError("3.1", f"bad end magic {trailer[32:].hex(' ')} at offset "
                                  f"{self.trailer_offset + 32} (expected {END_MAGIC.hex(' ')})")
        self.sha256 = trailer[:32].hex()     # 3.2 is checked by verify() (lazy, allowed by 3.2)

        # 2.8 padding between the manifest and data_offset MUST be zero.
        pad = self._bytes(HEADER_SIZE + manifest_length, data_offset)
        if pad.count(0) != len(pad):
            raise LaqError("2.8", f"non-zero padding between the manifest and data_offset "
                                  f"(bytes {HEADER_SIZE + manifest_length}..{data_offset - 1})")

    # -- §4 manifest --------------------------------------------------------------------------

    def _parse_manifest(self):
        raw = self._bytes(HEADER_SIZE, HEADER_SIZE + self.manifest_length)

        # §2 manifest_crc32 (catalogue: 4.x manifestChecksumMismatch).
        crc = zlib.crc32(raw)
        if crc != self.manifest_crc32:
            raise LaqError("4", f"manifest CRC-32 mismatch: stored {self.manifest_crc32:#010x}, "
                                f"computed {crc:#010x}")

        # §4: one JSON object, UTF-8 without a byte-order mark.
        if raw.startswith(b"\xef\xbb\xbf"):
            raise LaqError("4", "manifest starts with a UTF-8 byte-order mark")
        try:
            text = raw.decode("utf-8")       # strict: rejects invalid UTF-8 and encoded surrogates
        except UnicodeDecodeError as e:
            raise LaqError("4", f"manifest is not valid UTF-8: {e}") from None
        try:
            doc = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                             parse_constant=_reject_constant, object_pairs_hook=_unique_members)
            _check_strings(doc)
        except UnicodeEncodeError:
            raise LaqError("4", "manifest holds an escaped lone surrogate (not Unicode text)") from None
        except RecursionError:
            # 4.1: only pathologically deep nesting exhausts the parser's recursion limit.
            raise LaqError("4.1", f"manifest nesting depth exceeds {MAX_DEPTH}") from None
        except ValueError as e:               # JSONDecodeError, oversized integer literals, NaN
            raise LaqError("4", f"manifest is not valid JSON: {e}") from None

        # 4.1 nesting depth.
        depth = _json_depth(doc)
        if depth > MAX_DEPTH:
            raise LaqError("4.1", f"manifest nesting depth {depth} exceeds {MAX_DEPTH}")

        # 4.3 top-level object.
        if not isinstance(doc, dict):
            raise LaqError("4.3", f"manifest is a JSON {type(doc).__name__}, not an object")
        for key, typ, tname in (("format", str, "string"),
                                ("required_features", list, "array"),
                                ("model", dict, "object"),
                                ("provenance", list, "array"),
                                ("metadata", dict, "object"),
                                ("tensors", list, "array")):
            if key not in doc:
                raise LaqError("4.3", f"manifest lacks required key {key!r}")
            if not isinstance(doc[key], typ):
                raise LaqError("4.3", f"manifest key {key!r} must be a JSON {tname}")
        if doc["format"] != "laq":
            raise LaqError("4.3", f"manifest format is {doc['format']!r}, expected 'laq'")
        for i, f in enumerate(doc["required_features"]):
            if not isinstance(f, str):
                raise LaqError("4.3", f"required_features[{i}] is not a string")
        # 4.5 provenance records: `tool` and `command` are required.
        for i, rec in enumerate(doc["provenance"]):
            if not isinstance(rec, dict):
                raise LaqError("4.5", f"provenance[{i}] is not an object")
            for key in ("tool", "command"):
                if not isinstance(rec.get(key), str):
                    raise LaqError("4.5", f"provenance[{i}] lacks string key {key!r}")
        # 4.1 tensor count.
        if len(doc["tensors"]) > MAX_TENSORS:
            raise LaqError("4.1", f"{len(doc['tensors'])} tensors, more than {MAX_TENSORS}")

        self.manifest = doc
        self.required_features = list(doc["required_features"])

    # -- §5 tensor table ----------------------------------------------------------------------

    def _parse_tensor_table(self):
        tensors = self.manifest["tensors"]
        self.tensors = tensors
        self._info: list[dict] = []          # parsed, validated per-tensor information
        self._by_name: dict[str, int] = {}
        seen_names: set[bytes] = set()
        unknown_required = [f for f in self.required_features if f not in KNOWN_FEATURES]

        for idx, t in enumerate(tensors):
            where = f"tensors[{idx}]"
            if not isinstance(t, dict):
                raise LaqError("5", f"{where} is not an object")

            # 5.1 name.
            name = t.get("name")
            if not isinstance(name, str):
                raise LaqError("5.1", f"{where}: missing or non-string name")
            try:
                name_bytes = name.encode("utf-8")
            except UnicodeEncodeError:
                raise LaqError("5.1", f"{where}: name {name!r} is not valid UTF-8 "
                                      f"(unpaired surrogate escape)") from None
            if not (1 <= len(name_bytes) <= MAX_NAME_BYTES):
                raise LaqError("5.1", f"{where}: name is {len(name_bytes)} bytes of UTF-8, "
                                      f"must be 1..{MAX_NAME_BYTES}")
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
                raise LaqError("5.1", f"{where}: name {name!r} contains a control character")
            # 5.1: unique up to Unicode canonical equivalence (compared in NFC).
            canonical = unicodedata.normalize("NFC", name)
            if canonical in seen_names:
                raise LaqError("5.1", f"{where}: duplicate tensor name {name!r}")
            seen_names.add(canonical)
            where = f"tensor {name!r}"

            # 5.2 shape (and 4.1 integer range for each dimension).
            shape = t.get("shape")
            if not isinstance(shape, list):
                raise LaqError("5.2", f"{where}: missing or non-array shape")
            if len(shape) > MAX_RANK:
                raise LaqError("5.2", f"{where}: rank {len(shape)} exceeds {MAX_RANK}")
            n = 1
            for d in shape:
                if not _is_int(d):
                    raise LaqError("5.2", f"{where}: shape entry {d!r} is not an integer in "
                                          f"[0, 2^53-1]")
                n *= d                        # exact (no overflow in Python)
            if n > MAX_INT:
                raise LaqError("5.2", f"{where}: element count {n} of shape {shape} exceeds 2^53-1")
            if "axes" in t:
                axes = t["axes"]
                if not isinstance(axes, list) or not all(isinstance(a, str) for a in axes):
                    raise LaqError("5.2", f"{where}: axes must be an array of strings")
                if len(axes) != len(shape):
                    raise LaqError("5.2", f"{where}: {len(axes)} axes for rank {len(shape)}")

            # Other required keys (§5 table) and their types.
            dtype = t.get("dtype")
            if not isinstance(dtype, str):
                raise LaqError("5", f"{where}: missing or non-string dtype")
            if dtype not in KNOWN_DTYPES:
                raise LaqError("5", f"{where}: dtype {dtype!r} is not one of {KNOWN_DTYPES}")
            enc = t.get("encoding")
            if not isinstance(enc, dict) or not isinstance(enc.get("type"), str):
                raise LaqError("6.2", f"{where}: encoding must be an object with a string 'type'")
            comp = t.get("compression")
            if not isinstance(comp, str):
                raise LaqError("5", f"{where}: missing or non-string compression")
            for key in ("offset", "stored_length", "decoded_length", "crc32"):
                if not _is_int(t.get(key)):
                    raise LaqError("5", f"{where}: {key} must be an integer in [0, 2^53-1], "
                                        f"got {t.get(key)!r}")
            if t["crc32"] > 0xFFFFFFFF:
                raise LaqError("5.5", f"{where}: crc32 {t['crc32']} is not a 32-bit value")
            features = t.get("features", [])
            if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
                raise LaqError("5", f"{where}: features must be an array of strings")
            role = t.get("role", "weight")
            if not isinstance(role, str) or role not in KNOWN_ROLES:
                raise LaqError("5", f"{where}: role {role!r} is not one of {KNOWN_ROLES}")
            for key in ("of", "slot"):
                if key in t and not isinstance(t[key], str):
                    raise LaqError("5", f"{where}: {key} must be a string")

            # §8.1 decodability: unknown file-level required feature, tensor feature, encoding
            # type or compression -> listed and CRC-checked, but not decodable (not a file error).
            reasons = []
            if unknown_required:
                reasons.append(f"file requires unknown feature(s) {unknown_required}")
            unknown_feat = [f for f in features if f not in KNOWN_FEATURES]
            if unknown_feat:
                reasons.append(f"unknown tensor feature(s) {unknown_feat}")
            enc_type = enc["type"]
            if enc_type not in KNOWN_ENCODINGS:
                reasons.append(f"unknown encoding type {enc_type!r}")
            if comp not in KNOWN_COMPRESSIONS:
                reasons.append(f"unknown compression {comp!r}")

            info = {"index": idx, "name": name, "shape": tuple(shape), "n": n,
                    "encoding": enc, "compression": comp,
                    "offset": t["offset"], "stored_length": t["stored_length"],
                    "decoded_length": t["decoded_length"], "crc32": t["crc32"],
                    "role": role, "undecodable": "; ".join(reasons) or None}

            # A tensor feature may change the meaning of any encoding key (§8), so encoding and
            # size rules are only applied when every feature is known.
            if not unknown_feat:
                if enc_type in KNOWN_ENCODINGS:
                    self._check_encoding(info, where)          # 6.2 and 5.6 (first sentence)
                if comp == "none" and t["stored_length"] != t["decoded_length"]:
                    # 5.6 second sentence.
                    raise LaqError("5.6", f"{where}: compression none but stored_length "
                                          f"{t['stored_length']} != decoded_length "
                                          f"{t['decoded_length']}")
                if comp == "zlib":
                    s, d = t["stored_length"], t["decoded_length"]
                    # 7.1, checked before anything is allocated.
                    if not s < d:
                        raise LaqError("7.1", f"{where}: zlib payload stored_length {s} is not "
                                              f"smaller than decoded_length {d}")
                    if d > 1032 * s + 64:
                        raise LaqError("7.1", f"{where}: decoded_length {d} exceeds 1032 * "
                                              f"stored_length + 64 = {1032 * s + 64} "
                                              f"(compression bomb)")
            self._info.append(info)
            self._by_name[name] = idx

        # 5.3 layout and 5.4 padding.
        data_end = self.data_offset + self.data_length
        expected = self.data_offset
        for info in self._info:
            where = f"tensor {info['name']!r}"
            off, length = info["offset"], info["stored_length"]
            if off < expected:
                raise LaqError("5.3", f"{where}: offset {off} < expected {expected}: overlaps "
                                      f"the previous payload (or the manifest)")
            if off > expected:
                raise LaqError("5.3", f"{where}: offset {off} > expected {expected}: leaves "
                                      f"{off - expected} unaccounted bytes")
            end = off + length
            if end > data_end:
                raise LaqError("5.3", f"{where}: payload [{off}, {end}) ends past the data "
                                      f"section end {data_end}")
            nxt = align64(end)
            pad = self._bytes(end, nxt)
            if pad.count(0) != len(pad):
                raise LaqError("5.4", f"{where}: non-zero padding after the payload "
                                      f"(bytes {end}..{nxt - 1})")
            expected = nxt
        if expected != data_end:
            raise LaqError("5.3", f"data_length {self.data_length} != align64(end of last "
                                  f"payload) - data_offset = {expected - self.data_offset}: "
                                  f"{data_end - expected} unaccounted bytes")

        # 5.7 optimizer slots name an existing weight and have a slot.
        for info, t in zip(self._info, tensors):
            if info["role"] != "optimizer":
                continue
            where = f"tensor {info['name']!r}"
            of = t.get("of")
            if not isinstance(of, str):
                raise LaqError("5.7", f"{where}: optimizer tensor lacks 'of'")
            j = self._by_name.get(of)
            if j is None or self._info[j]["role"] != "weight":
                raise LaqError("5.7", f"{where}: 'of' names {of!r}, which is not a weight "
                                      f"tensor in this file")
            if not isinstance(t.get("slot"), str) or not t["slot"]:
                raise LaqError("5.7", f"{where}: optimizer tensor lacks 'slot'")

    def _check_encoding(self, info: dict, where: str):
        """6.1/6.2: validate a known encoding object, compute the implied decoded length and
        check it against decoded_length (5.6)."""
        enc, n, shape = info["encoding"], info["n"], info["shape"]
        etype = enc["type"]
        if etype in ("float32", "float16", "bfloat16"):
            # §4.3: keys inside encoding objects are not ignored; a float encoding has only `type`.
            extra = sorted(set(enc) - {"type"})
            if extra:
                raise LaqError("6.2", f"{where}: unexpected key(s) {extra} in {etype} encoding")
            implied = (4 if etype == "float32" else 2) * n
        else:                                 # codebook
            extra = sorted(set(enc) - {"type", "packing", "bits", "levels", "axis"})
            if extra:
                raise LaqError("6.2", f"{where}: unexpected key(s) {extra} in codebook encoding")
            packing = enc.get("packing")
            if packing == "bits":
                k = enc.get("bits")
                if type(k) is not int or not 1 <= k <= 8:
                    raise LaqError("6.2", f"{where}: bits must be an integer 1..8, got {k!r}")
                max_levels = 1 << k
                packed = (n * k + 7) // 8                          # 6.3
            elif packing == "base3":
                if "bits" in enc:
                    raise LaqError("6.2", f"{where}: 'bits' must be absent with base3 packing")
                k = None
                max_levels = 3
                packed = (n + 4) // 5                              # 6.4
            else:
                raise LaqError("6.2", f"{where}: codebook packing {packing!r} is not 'bits' or "
                                      f"'base3'")
            L = enc.get("levels")
            if type(L) is not int or not 1 <= L <= max_levels:
                raise LaqError("6.2", f"{where}: levels must be an integer 1..{max_levels}, "
                                      f"got {L!r}")
            axis = enc.get("axis")                                 # absent is read as null
            if axis is None:
                G = 1
            else:
                if type(axis) is not int or not 0 <= axis < len(shape):
                    raise LaqError("6.2", f"{where}: axis {axis!r} not null or in "
                                          f"[0, {len(shape)})")
                G = shape[axis]
            info.update(packing=packing, bits=k, L=L, axis=axis, G=G, packed=packed)
            implied = 4 * G * L + packed
        info["implied"] = implied
        if info["decoded_length"] != implied:
            raise LaqError("5.6", f"{where}: decoded_length {info['decoded_length']} != "
                                  f"{implied} implied by shape {list(shape)} and encoding")

    # -- decoding -----------------------------------------------------------------------------

    def _tensor(self, name: str) -> dict:
        idx = self._by_name.get(name)
        if idx is None:
            raise KeyError(name)
        return self._info[idx]

    def _check_crc(self, info: dict) -> bytes:
        """5.5: CRC-32 of the stored bytes; returns them."""
        stored = self._bytes(info["offset"], info["offset"] + info["stored_length"])
        ok = self._crc_ok.get(info["index"])
        if ok is None:
            ok = zlib.crc32(stored) == info["crc32"]
            self._crc_ok[info["index"]] = ok
        if not ok:
            raise LaqError("5.5", f"tensor {info['name']!r}: CRC-32 mismatch: stored "
                                  f"{info['crc32']:#010x}, computed {zlib.crc32(stored):#010x}")
        return stored

    @staticmethod
    def _inflate(stored: bytes, size: int, where: str) -> bytes:
        """7.2: one zlib stream that inflates to exactly `size` bytes and ends exactly at the
        end of the stored bytes. Output is capped at size + 1 bytes (no bombs)."""
        d = zlib.decompressobj()          # RFC 1950 zlib stream (header + adler32)
        try:
            # Ask for one byte more than allowed: getting it means the stream is too long.
            # Below the cap, zlib consumes all the input it can, so a stream that has not
            # reached its end by then is truncated.
            out = d.decompress(stored, size + 1)
        except zlib.error as e:
            raise LaqError("7.2", f"{where}: corrupt zlib stream: {e}") from None
        if len(out) > size:
            raise LaqError("7.2", f"{where}: zlib stream inflates to more than "
                                  f"decoded_length {size} bytes")
        if not d.eof:
            raise LaqError("7.2", f"{where}: zlib stream is truncated (no end of stream within "
                                  f"stored_length)")
        if d.unused_data:
            raise LaqError("7.2", f"{where}: {len(d.unused_data)} bytes after the end of the "
                                  f"zlib stream")
        if len(out) != size:
            raise LaqError("7.2", f"{where}: zlib stream inflates to {len(out)} bytes, "
                                  f"decoded_length is {size}")
        return out

    def decodable(self, name: str) -> bool:
        return self._tensor(name)["undecodable"] is None

    def undecodable_reason(self, name: str) -> str | None:
        return self._tensor(name)["undecodable"]

    def decode(self, name: str) -> np.ndarray:
        """The tensor's values as a float32 array of its shape (§6)."""
        info = self._tensor(name)
        where = f"tensor {name!r}"
        if info["undecodable"]:
            # 8.1: refuse, naming the unknown item.
            raise LaqError("8.1", f"{where} is not decodable by this reader: {info['undecodable']}")
        stored = self._check_crc(info)                              # 5.5
        if info["compression"] == "zlib":
            payload = self._inflate(stored, info["decoded_length"], where)
        else:
            payload = stored
        if len(payload) != info["decoded_length"]:                  # guaranteed by 5.6/7.2
            raise LaqError("5.6", f"{where}: payload is {len(payload)} bytes, decoded_length "
                                  f"is {info['decoded_length']}")
        etype = info["encoding"]["type"]
        n, shape = info["n"], info["shape"]
        if etype == "float32":                                      # 6.1
            out = np.frombuffer(payload, dtype="<u4", count=n).astype(np.uint32).view(np.float32)
        elif etype == "float16":                                    # 6.1, exact widening
            global _HALF_TABLE
            if _HALF_TABLE is None:
                _HALF_TABLE = _half_to_float_table()
            out = _HALF_TABLE[np.frombuffer(payload, dtype="<u2", count=n)].view(np.float32)
        elif etype == "bfloat16":                                   # 6.1, upper 16 bits
            out = (np.frombuffer(payload, dtype="<u2", count=n).astype(np.uint32) << 16
                   ).view(np.float32)
        elif n == 0:
            # An empty codebook tensor: its level table is still checked (6.5), no codes to unpack.
            levels = np.frombuffer(payload, dtype="<u4", count=len(payload) // 4).view(np.float32)
            if not np.all(np.isfinite(levels)):
                raise LaqError("6.5", f"{where}: a level is not finite")
            out = np.empty((0,), np.float32)
        else:
            out = self._decode_codebook(info, payload, where)
        return _shaped(out, shape)

    def _decode_codebook(self, info: dict, payload: bytes, where: str) -> np.ndarray:
        n, L, G = info["n"], info["L"], info["G"]
        nlev = G * L
        levels = np.frombuffer(payload, dtype="<f4", count=nlev).astype(np.float32)
        # 6.5: every level MUST be finite (checked for the whole table, used or not).
        if nlev and not np.isfinite(levels).all():
            bad = int(np.flatnonzero(~np.isfinite(levels))[0])
            raise LaqError("6.5", f"{where}: level [{bad // L}][{bad % L}] is not finite "
                                  f"({levels[bad]!r})")
        packed = np.frombuffer(payload, dtype=np.uint8, offset=4 * nlev)
        if packed.size != info["packed"]:
            raise LaqError("5.6", f"{where}: {packed.size} bytes of codes, expected {info['packed']}")
        codes = self._unpack_bits(packed, n, info["bits"], where) if info["packing"] == "bits" \
            else self._unpack_base3(packed, n, where)
        # 6.5: every code MUST be < L.
        if n and int(codes.max()) >= L:
            bad = int(np.flatnonzero(codes >= L)[0])
            raise LaqError("6.5", f"{where}: code {int(codes[bad])} at element {bad} is >= "
                                  f"levels {L}")
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        if info["axis"] is None:
            return levels[codes]
        # group(i) = (i / stride) mod shape[axis]: view the codes as (outer, C, stride).
        shape, axis = info["shape"], info["axis"]
        C = shape[axis]
        stride = int(np.prod(shape[axis + 1:], dtype=np.int64)) if axis + 1 < len(shape) else 1
        idx = codes.reshape(-1, C, stride).astype(np.intp)
        idx += (np.arange(C, dtype=np.intp) * L)[None, :, None]
        return levels[idx].reshape(-1)

    @staticmethod
    def _unpack_bits(packed: np.ndarray, n: int, k: int, where: str) -> np.ndarray:
        """6.3: code i is stream bits [i*k, i*k + k), LSB first; stream bit b is bit b%8 of
        byte b//8. The unused high bits of the last byte MUST be zero."""
        nbits = n * k
        used_in_last = nbits - 8 * (packed.size - 1) if packed.size else 0
        if packed.size and used_in_last < 8 and int(packed[-1]) >> used_in_last:
            raise LaqError("6.3", f"{where}: unused high bits of the last code byte are not "
                                  f"zero (byte {int(packed[-1]):#04x}, {used_in_last} bits used)")
        if k == 8:
            return packed[:n].copy()
        bits = np.unpackbits(packed, bitorder="little")[:nbits].reshape(n, k)
        if k in (1,):
            return bits[:, 0].copy()
        wide = np.zeros((n, 8), dtype=np.uint8)
        wide[:, :k] = bits
        return np.packbits(wide, axis=1, bitorder="little").reshape(n)

    @staticmethod
    def _unpack_base3(packed: np.ndarray, n: int, where: str) -> np.ndarray:
        """6.4: byte j = c0 + 3*c1 + 9*c2 + 27*c3 + 81*c4 for codes 5j..5j+4. Every byte MUST
        be < 243 and the last byte < 3^r, r = number of codes it holds."""
        if packed.size == 0:
            return np.zeros(0, dtype=np.uint8)
        if int(packed.max()) >= 243:
            j = int(np.flatnonzero(packed >= 243)[0])
            raise LaqError("6.4", f"{where}: base3 byte {j} = {int(packed[j])} is >= 243")
        r = n - 5 * (packed.size - 1)
        if int(packed[-1]) >= 3 ** r:
            raise LaqError("6.4", f"{where}: last base3 byte = {int(packed[-1])} holds {r} "
                                  f"code(s) and must be < {3 ** r}")
        return _BASE3_TABLE[packed].reshape(-1)[:n]

    # -- verification -------------------------------------------------------------------------

    def computed_sha256(self) -> str:
        h = hashlib.sha256()
        chunk = 16 << 20
        for start in range(0, self.trailer_offset, chunk):
            h.update(self._bytes(start, min(start + chunk, self.trailer_offset)))
        return h.hexdigest()

    def verify(self) -> list[str]:
        """Every problem found (empty when the file is valid): the structural rules were checked
        when the file was opened; this adds the SHA-256 (3.2), every tensor CRC (5.5) and a full
        decode of every decodable tensor (6.3-6.5, 7.2)."""
        problems: list[str] = []
        computed = self.computed_sha256()
        if computed != self.sha256:                                 # 3.2
            problems.append(str(LaqError("3.2", f"SHA-256 mismatch: trailer {self.sha256}, "
                                                f"computed {computed}")))
        for info in self._info:
            try:
                self._check_crc(info)                               # 5.5, decodable or not
                if info["undecodable"] is None:
                    self.decode(info["name"])
            except LaqError as e:
                problems.append(str(e))
        return problems

    def summary(self, name: str) -> str:
        """One-line description of a tensor's encoding, for the CLI."""
        info = self._tensor(name)
        enc = info["encoding"]
        if enc.get("type") == "codebook" and "packing" in info:
            packing = f"bits k={info['bits']}" if info["packing"] == "bits" else "base3"
            axis = "tensor" if info["axis"] is None else f"axis={info['axis']}"
            s = f"codebook {packing} L={info['L']} {axis}"
        else:
            s = str(enc.get("type"))
        if info["undecodable"]:
            s += f" (not decodable: {info['undecodable']})"
        return s


def open_laq(path) -> LaqFile:
    return LaqFile(path)


def verify_path(path) -> list[str]:
    """verify() for a path: a file that cannot be opened gives a one-element list."""
    try:
        f = LaqFile(path)
    except LaqError as e:
        return [str(e)]
    with f:
        return f.verify()


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def _write_npz(path: str, arrays: dict[str, np.ndarray]):
    """np.savez without its keyword-argument pitfalls (a tensor named 'file' or
    'allow_pickle' would clash with savez's own parameters)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Independent .laq reader (spec/FORMAT.md)")
    ap.add_argument("file")
    ap.add_argument("--verify", action="store_true", help="check everything; exit 1 if invalid")
    ap.add_argument("--dump", metavar="OUT.npz", help="write all decodable tensors to an npz")
    args = ap.parse_args(argv)

    try:
        f = LaqFile(args.file)
    except LaqError as e:
        if args.verify:
            print(f"INVALID: {e}")
        else:
            print(f"error: {e}", file=sys.stderr)
        return 1
    with f:
        print(f"file: {args.file}")
        print(f"version: {f.version[0]}.{f.version[1]}")
        print(f"sha256: {f.sha256}")
        if f.required_features:
            print(f"required_features: {f.required_features}")
        print(f"tensors: {len(f.tensors)}")
        for t in f.tensors:
            print(f"  {t['name']}  {list(t['shape'])}  {f.summary(t['name'])}  "
                  f"{t['compression']}  {t['stored_length']} B")
        rc = 0
        if args.verify:
            problems = f.verify()
            for p in problems:
                print(f"INVALID: {p}")
            if problems:
                rc = 1
            else:
                print("valid")
        if args.dump:
            arrays = {}
            for t in f.tensors:
                name = t["name"]
                if not f.decodable(name):
                    print(f"skipped {name!r}: {f.undecodable_reason(name)}", file=sys.stderr)
                    continue
                try:
                    arrays[name] = f.decode(name)
                except LaqError as e:
                    print(f"error: {e}", file=sys.stderr)
                    rc = 1
            _write_npz(args.dump, arrays)
            print(f"wrote {len(arrays)} tensor(s) to {args.dump}")
        return rc


if __name__ == "__main__":
    sys.exit(main())
