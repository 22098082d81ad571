#!/usr/bin/env python3
"""Copies ledger rows into PostgreSQL at the pace of a drain, as if each job's record were stored
as soon as it was claimed: for bench-ledger's "PostgreSQL's inserts alone" drain.

    copy-with-drain.py REDIS_PORT QUEUE TOTAL PARTS_DIR PSQL [PSQL ARGS ...]

PARTS_DIR holds binary COPY files of 4,000 rows each (part00000.bin, ...). One psql session
(its command line after PARTS_DIR) reads `\\copy` commands from its standard input; each part is
sent once the drain has taken that part's rows from QUEUE (TOTAL jobs at the start), polled over
one Redis connection about every millisecond. Returns once psql has copied every part.
"""
import glob
import subprocess
import sys
import time

from resp_connection import RespConnection

port, queue, total, parts_dir, psql = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
parts = sorted(glob.glob(f"{parts_dir}/part*.bin"))
redis = RespConnection(port, "copy-with-drain")


def depth():
    return redis.integer("LLEN", queue)


if not parts:
    raise SystemExit(f"copy-with-drain: no part*.bin in {parts_dir}")
copier = subprocess.Popen(psql, stdin=subprocess.PIPE, text=True)
sent = 0
try:
    while sent < len(parts):
        taken = total - depth()
        while sent < len(parts) and (taken >= (sent + 1) * 4000 or taken >= total):
            copier.stdin.write(f"\\copy jobrouter.attempts FROM '{parts[sent]}' (FORMAT binary)\n")
            copier.stdin.flush()
            sent += 1
        time.sleep(0.001)
    copier.stdin.close()
except BrokenPipeError:
    pass  # psql stopped on an error (ON_ERROR_STOP): its exit status says so below
status = copier.wait()
if status != 0:
    raise SystemExit(f"copy-with-drain: psql exited with {status} after {sent} of {len(parts)} parts")
