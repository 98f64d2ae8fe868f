#!/usr/bin/env python3
"""Top functions of a py-spy raw (collapsed stacks) profile, by own and inclusive time.

.venv/bin/python bench/profile_top.py bench/results/profile-sqlite.txt [-n 25]
"""

import argparse
import re
from collections import Counter
from pathlib import Path

LINE_NO = re.compile(r":\d+\)$")
PATH_PREFIX = re.compile(r"\(\S*/(site-packages|lib/python3\.\d+|src)/")


def function_name(frame: str) -> str:
    """'f (/x/site-packages/pkg/mod.py:12)' -> 'f (pkg/mod.py)'."""
    return PATH_PREFIX.sub("(", LINE_NO.sub(")", frame.strip()))


def load_stacks(path: Path) -> list:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [function_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if frames and count.isdigit():
            stacks.append((frames, int(count)))
    return stacks


def top_functions(path: Path, n: int = 25) -> str:
    own, inclusive, total = Counter(), Counter(), 0
    for frames, count in load_stacks(path):
        total += count
        own[frames[-1]] += count
        inclusive.update(dict.fromkeys(frames, count))
    out = [f"{path.name}: {total} samples"]
    for title, counter in (("own time", own), ("inclusive time", inclusive)):
        out += ["", f"top {n} by {title}:"]
        out += [f"{100 * c / max(total, 1):6.1f}%  {name}" for name, c in counter.most_common(n)]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("-n", type=int, default=25)
    args = ap.parse_args()
    print(top_functions(args.profile, args.n), end="")


if __name__ == "__main__":
    main()
