#!/usr/bin/env python3
"""Writes the link order (server/link-order.txt) from callgrind dumps of the release server.

usage: order.py BINARY DUMP_DIR OUT

Every function of BINARY that ran in any dump, the most instructions first (the hottest code
packed tightest); functions of other objects (libc) are left out.
"""
import collections
import glob
import subprocess
import sys

binary, dumps, out = sys.argv[1:4]
cost = collections.Counter()
for path in glob.glob(f"{dumps}/*"):
    function, skip = None, False
    with open(path, errors="replace") as dump:
        for line in dump:
            if skip:  # the inclusive cost of a call, not the caller's own
                skip = False
            elif line.startswith("fn="):
                function = line[3:].rstrip("\n")
                cost[function] += 0
            elif line.startswith("calls="):
                skip = True
            elif function and line[:1] and (line[0].isdigit() or line[0] in "+-*"):
                fields = line.split()
                if len(fields) >= 2 and fields[1].isdigit():
                    cost[function] += int(fields[1])
symbols = subprocess.run(
    ["nm", "--defined-only", binary], capture_output=True, text=True, check=True
).stdout
defined = {f[2] for f in (line.split() for line in symbols.splitlines()) if len(f) == 3}
names = [name for name, _ in cost.most_common() if name in defined]
with open(out, "w") as file:
    file.write("\n".join(names) + "\n")
print(f"{len(names)} functions ran, written to {out}")
