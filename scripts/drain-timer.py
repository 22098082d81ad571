#!/usr/bin/env python3
"""Times a drain over one persistent Redis connection: from the first claim (the queues' total
falls below its starting depth, or a claim appears in flight) until the queues and the in-flight
hash are empty. Prints "<first claim epoch> <empty epoch>" (seconds).

    drain-timer.py PORT INFLIGHT_KEY QUEUE [QUEUE ...]

Polls about every millisecond; one connection, so the poller costs little next to the drain.
"""
import sys
import time

from resp_connection import RespConnection

port, inflight, queues = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
redis = RespConnection(port, "drain-timer")


# Queue depths and claims in flight, in one round trip.
script = "local n = 0 for i = 1, #KEYS - 1 do n = n + redis.call('llen', KEYS[i]) end " \
         "return n * 1000000000 + redis.call('hlen', KEYS[#KEYS])"
keys = queues + [inflight]


def sample():
    value = redis.integer("EVAL", script, str(len(keys)), *keys)
    return value // 1000000000, value % 1000000000


start_depth, _ = sample()
while True:
    depth, claimed = sample()
    if depth < start_depth or claimed > 0:
        first = time.time()
        break
    time.sleep(0.0005)
while True:
    depth, claimed = sample()
    if depth == 0 and claimed == 0:
        print(f"{first:.6f} {time.time():.6f}")
        break
    time.sleep(0.001)
