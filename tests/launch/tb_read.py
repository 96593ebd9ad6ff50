#!/usr/bin/env python3
"""tb_read.py — reads skein's TensorBoard event files with TensorBoard's own EventAccumulator
and compares every scalar tag with the expected (step, value) points.

usage: tb_read.py <tb_dir> <expect.json>   where expect.json is {"tag": [[step, value], ...]}
Exits 0 when the tags and points match exactly (values are float32 in the file), 1 otherwise.
Called by tests/launch/test_metrics.cpp when the `tensorboard` package is installed.
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main(tb_dir, expect_path):
    with open(expect_path) as f:
        expect = json.load(f)
    ea = EventAccumulator(tb_dir)  # purge_orphaned_data defaults to True, as in TensorBoard
    ea.Reload()
    tags = sorted(ea.Tags()["scalars"])
    errors = []
    if tags != sorted(expect):
        errors.append(f"tags {tags} != expected {sorted(expect)}")
    for tag, points in expect.items():
        if tag not in tags:
            continue
        got = [(e.step, e.value) for e in ea.Scalars(tag)]
        want = [(int(s), float(v)) for s, v in points]
        if got != want:
            errors.append(f"{tag}: got {got}, expected {want}")
    for e in errors:
        print("tb_read.py:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
