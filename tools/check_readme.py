#!/usr/bin/env python3
"""Runs the README's walk-through and checks every line of output it shows against the output of
the commands beside it.

    python3 tools/check_readme.py [--laq PATH] [--exact]      (default: the laq on PATH, else .build/debug/laq)

The walk-through lies between `<!-- check:begin -->` and `<!-- check:end -->`. Its ```sh blocks
run in order in the repository's root with `laq` on PATH (the --laq binary's folder first), each
under `bash -e`. The ```text block after a command block is what those commands print (stdout
and stderr together): its lines must be the output's lines, in order; a line `…` stands for any
number of lines (so a block without one must be the whole output). Text must match exactly up to runs of spaces (columns may
shift with a number's width); numbers must match to the digits shown, or, without --exact, a
decimal within 0.3 points for a percentage and 2% otherwise (integers always exactly): a
calibration run's float sums follow the CPU's instruction set and BLAS kernels, so another
machine may end a digit away.

It also checks the README is under 300 lines and free of development-history words.

Exit status: 0 every line matched; 1 a mismatch (each is printed with the output); 2 the README
or a command could not be run.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
ELLIPSIS = "…"
MAX_LINES = 300
HISTORY_WORDS = ["session", "this stop", "previous stop"]


def blocks(region):
    """The fenced blocks of the region, in order: (language, text)."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w+)\n(.*?)```", region, re.S)]


def split_numbers(line):
    """(text with each number replaced by #, the numbers as written, whether each is a percentage)."""
    numbers, percents = [], []
    for m in NUMBER.finditer(line):
        numbers.append(m.group(0))
        percents.append(line[m.end():m.end() + 1] == "%")
    text = " ".join(NUMBER.sub("#", line).split())
    return text, numbers, percents


def numbers_agree(shown, actual, percent, exact):
    if shown == actual:
        return True
    if exact:
        return False
    if not any(c in shown for c in ".e"):
        return False  # counts, shapes, steps: exact
    a, b = float(shown), float(actual)
    if percent:
        return abs(a - b) <= 0.3
    return abs(a - b) <= 0.02 * max(abs(a), abs(b))


def line_matches(shown, actual, exact):
    """(whether `actual` gives `shown`, how many of its numbers differ from the digits shown)."""
    text_s, numbers_s, percents = split_numbers(shown)
    text_a, numbers_a, _ = split_numbers(actual)
    if text_s != text_a or len(numbers_s) != len(numbers_a):
        return False, 0
    inexact = sum(1 for s, a in zip(numbers_s, numbers_a) if s != a)
    ok = all(numbers_agree(s, a, p, exact) for s, a, p in zip(numbers_s, numbers_a, percents))
    return ok, inexact


def match_output(expected, actual, exact):
    """Matches the shown lines against the output; returns (error or None, numbers within tolerance)."""
    lines = [line.rstrip() for line in expected.rstrip("\n").split("\n")]
    out = [line.rstrip() for line in actual.rstrip("\n").split("\n")]
    segments, current = [], []
    for line in lines:
        if line.strip() == ELLIPSIS:
            segments.append(current)
            current = []
        else:
            current.append(line)
    segments.append(current)
    anchored_start = bool(segments[0])
    anchored_end = bool(segments[-1])
    position, inexact = 0, 0
    for index, segment in enumerate(segments):
        if not segment:
            continue
        first_possible = position
        last_possible = len(out) - len(segment)
        if index == 0 and anchored_start:
            last_possible = min(last_possible, 0)
        if index == len(segments) - 1 and anchored_end:
            first_possible = max(first_possible, len(out) - len(segment))
        found = None
        for start in range(first_possible, last_possible + 1):
            results = [line_matches(s, out[start + k], exact) for k, s in enumerate(segment)]
            if all(ok for ok, _ in results):
                found = start
                inexact += sum(n for _, n in results)
                break
        if found is None:
            return f"these lines are not in the output, in order:\n    " + "\n    ".join(segment), inexact
        position = found + len(segment)
    return None, inexact


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--laq", default=shutil.which("laq") or os.path.join(ROOT, ".build", "debug", "laq"),
                        help="the laq binary (default: laq on PATH, else .build/debug/laq)")
    parser.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    parser.add_argument("--exact", action="store_true", help="numbers must match to the digit")
    args = parser.parse_args()

    try:
        text = open(args.readme, encoding="utf-8").read()
    except OSError as error:
        print(f"check_readme: cannot read {args.readme}: {error}", file=sys.stderr)
        return 2
    failures = []
    line_count = text.count("\n")
    if line_count >= MAX_LINES:
        failures.append(f"README.md has {line_count} lines; keep it under {MAX_LINES} (details go to docs/)")
    for word in HISTORY_WORDS:
        if word in text.lower():
            failures.append(f"README.md mentions '{word}': history goes to CHANGELOG.md")

    begin, end = "<!-- check:begin -->", "<!-- check:end -->"
    if text.count(begin) != 1 or text.count(end) != 1:
        print("check_readme: README.md needs one check:begin and one check:end marker", file=sys.stderr)
        return 2
    region = text.split(begin, 1)[1].split(end, 1)[0]
    laq = os.path.abspath(args.laq)
    if not os.access(laq, os.X_OK):
        print(f"check_readme: {laq} is not an executable laq: build it (swift build) or pass --laq", file=sys.stderr)
        return 2
    environment = dict(os.environ, PATH=os.path.dirname(laq) + os.pathsep + os.environ.get("PATH", ""))

    output = None
    checked = inexact_total = commands = 0
    for language, body in blocks(region):
        if language == "sh":
            commands += sum(1 for line in body.splitlines() if line.strip() and not line.strip().startswith("#"))
            print(f"$ {body.strip()}", flush=True)
            result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", body], cwd=ROOT, env=environment,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            output = result.stdout
            if result.returncode != 0:
                print(output)
                print(f"check_readme: the commands above exited {result.returncode}", file=sys.stderr)
                return 2
        elif language == "text":
            if output is None:
                failures.append("an output block comes before any command block")
                continue
            error, inexact = match_output(body, output, args.exact)
            checked += sum(1 for line in body.splitlines() if line.strip() and line.strip() != ELLIPSIS)
            inexact_total += inexact
            if error:
                failures.append(f"{error}\n  the commands printed:\n    " + "\n    ".join(output.rstrip("\n").split("\n")))
            output = None
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"check_readme: {commands} commands, {checked} output lines checked, "
          f"{inexact_total} numbers within tolerance rather than to the digit, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
