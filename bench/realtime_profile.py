"""Where a worker's time went: a py-spy raw recording (`bench/realtime --profile DIR`) summed up.

    python -m bench.realtime_profile bench/results/profiles/fantasize-1000.txt [--top 25]

py-spy's raw format is one line per distinct stack, `frame;frame;...;frame count`, innermost frame last, each
frame `function (file:line)`. Printed: the samples, the functions where they were taken (self), and the
functions they were under (inclusive: a function counted once per sample however deep it recurses), each as a
share of all samples. Lines are dropped from the frames so a function is one entry.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """`function (package/module.py)`: the file shortened to its last two parts, the line dropped."""
    found = FRAME.match(frame.strip())
    if not found:
        return frame.strip()
    parts = found["file"].split("/")
    return f"{found['function']} ({'/'.join(parts[-2:])})"


def summarize(path: Path) -> tuple[int, Counter, Counter]:
    own: Counter = Counter()
    under: Counter = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [frame_name(frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for name in set(frames):
            under[name] += samples
    return total, own, under


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime_profile", description=__doc__.splitlines()[0])
    parser.add_argument("recording", type=Path, help="a py-spy --format raw file")
    parser.add_argument("--top", type=int, default=25, help="rows per list (default 25)")
    args = parser.parse_args(argv)
    total, own, under = summarize(args.recording)
    print(f"{args.recording}: {total:,} samples")
    for title, counter in (("self", own), ("inclusive", under)):
        print(f"\n{title}:")
        for name, samples in counter.most_common(args.top):
            print(f"  {100 * samples / max(1, total):5.1f}%  {name}")


if __name__ == "__main__":
    main()
