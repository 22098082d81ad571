#!/usr/bin/env python3
"""Times a drain over one persistent Redis connection: from the first claim (the queues' total
falls below its starting depth, or a claim appears in flight) until the queues and the in-flight
hash are empty. Prints "<first claim epoch> <empty epoch>" (seconds).

    drain-timer.py PORT INFLIGHT_KEY QUEUE [QUEUE ...]

Polls about every millisecond; one connection, so the poller costs little next to the drain.
"""
import socket
import sys
import time

port, inflight, queues = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
sock = socket.create_connection(("127.0.0.1", port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
reader = sock.makefile("rb")


def command(*words):
    parts = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode() if isinstance(word, str) else word
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    sock.sendall(b"".join(parts))
    line = reader.readline()
    if line[:1] != b":":
        raise SystemExit(f"drain-timer: unexpected reply {line!r}")
    return int(line[1:])


# Queue depths and claims in flight, in one round trip.
script = "local n = 0 for i = 1, #KEYS - 1 do n = n + redis.call('llen', KEYS[i]) end " \
         "return n * 1000000000 + redis.call('hlen', KEYS[#KEYS])"
keys = queues + [inflight]


def sample():
    value = command("EVAL", script, str(len(keys)), *keys)
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
