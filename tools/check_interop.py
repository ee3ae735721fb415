#!/usr/bin/env python3
"""Cross-check .laq files written by the Swift writer against the independent Python reader.

Usage: python3 tools/check_interop.py DIR

For every DIR/*.laq:
  - with a sibling <stem>.expected: the file must open, every tensor must decode, the
    concatenation (tensor-table order) of every tensor's values as little-endian float32 bytes
    (row-major) must equal the .expected bytes exactly (NaN bit patterns included), and
    verify() must report no problem;
  - bad-*.laq without .expected: the file must be rejected: verify() must report at least one
    problem, and opening / decoding / verifying may raise LaqError but no other exception;
  - any other .laq without .expected is a failure (nothing to compare against).
Any exception other than LaqError is a reader bug and counts as a failure.

Prints one line per failure, then `interop: N passed, M failed`; exits 0 iff M == 0, and 2 if
DIR holds no .laq file.
"""

from __future__ import annotations

import os
import sys
import traceback

sys.dont_write_bytecode = True          # leave no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from laq_reader import LaqError, LaqFile  # noqa: E402


def _first_difference(a: bytes, b: bytes) -> str:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return (f"first difference at byte {i} (float32 element {i // 4}): "
                    f"reader {a[i // 4 * 4:i // 4 * 4 + 4].hex()} expected "
                    f"{b[i // 4 * 4:i // 4 * 4 + 4].hex()}")
    return f"lengths differ: reader {len(a)} bytes, expected {len(b)} bytes"


def _bug(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    at = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
    return f"reader bug: {type(e).__name__}: {e}{at}"


def check_good(path: str, expected_path: str) -> list[str]:
    """A valid file: decode everything and compare with .expected; verify() must be empty."""
    failures = []
    try:
        with open(expected_path, "rb") as fh:
            expected = fh.read()
    except OSError as e:
        return [f"cannot read {expected_path}: {e}"]
    try:
        with LaqFile(path) as f:
            parts = []
            for t in f.tensors:
                arr = f.decode(t["name"])
                if arr.dtype.kind != "f" or arr.dtype.itemsize != 4:
                    failures.append(f"tensor {t['name']!r} decoded to dtype {arr.dtype}")
                if list(arr.shape) != list(t["shape"]):
                    failures.append(f"tensor {t['name']!r} decoded to shape {list(arr.shape)}, "
                                    f"table says {t['shape']}")
                parts.append(arr.astype("<f4").tobytes())
            got = b"".join(parts)
            if got != expected:
                failures.append("decoded values differ from .expected: "
                                + _first_difference(got, expected))
            for p in f.verify():
                failures.append(f"verify: {p}")
    except LaqError as e:
        failures.append(f"rejected a valid file: {e}")
    except Exception as e:  # noqa: BLE001 - any other exception is a reader bug
        failures.append(_bug(e))
    return failures


def check_bad(path: str) -> list[str]:
    """An invalid file: verify() must report a problem; only LaqError may be raised."""
    problems: list[str] = []
    try:
        try:
            f = LaqFile(path)
        except LaqError as e:
            problems.append(str(e))
        else:
            with f:
                for t in f.tensors:       # decoding may fail, but only with LaqError
                    try:
                        f.decode(t["name"])
                    except LaqError:
                        pass
                problems.extend(f.verify())
    except Exception as e:  # noqa: BLE001
        return [_bug(e)]
    if not problems:
        return ["accepted an invalid file: verify() found no problem"]
    return []


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: check_interop.py DIR", file=sys.stderr)
        return 2
    d = argv[0]
    try:
        names = sorted(x for x in os.listdir(d) if x.endswith(".laq"))
    except OSError as e:
        print(f"interop: cannot list {d}: {e}", file=sys.stderr)
        return 2
    if not names:
        print(f"interop: no .laq files in {d}")
        return 2

    passed = failed = 0
    for name in names:
        path = os.path.join(d, name)
        expected = os.path.join(d, name[:-len(".laq")] + ".expected")
        if os.path.exists(expected):
            failures = check_good(path, expected)
        elif name.startswith("bad-"):
            failures = check_bad(path)
        else:
            failures = [f"no {os.path.basename(expected)} to compare against "
                        f"(and not named bad-*)"]
        if failures:
            failed += 1
            for msg in failures:
                print(f"FAIL {name}: {msg}")
        else:
            passed += 1
    print(f"interop: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
