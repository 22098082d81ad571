#!/usr/bin/env python3
"""Cost of scraping, measured inside one long drain (used by bench-metrics.sh).

Alternates windows of WINDOW seconds: in odd windows /metrics is scraped every 100 ms over one
kept-alive connection (as Prometheus does), in even windows not at all. The drain rate of each
window comes from the queue's length (LLEN on one persistent connection). Each scraped window is
compared with the mean of the two unscraped windows around it, so a drift of the machine's speed
over the run (this machine's rate drifts by ±10 % within a minute) cancels out. Prints the mean
ratio with a 95 % confidence interval.

    scrape-windows.py REDIS_PORT HTTP_PORT QUEUE [WINDOW_SECONDS]
"""
import http.client
import socket
import statistics
import sys
import time

redis_port, http_port, queue = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
window = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
redis = socket.create_connection(("127.0.0.1", redis_port))
replies = redis.makefile("rb")


def length():
    redis.sendall(f"*2\r\n$4\r\nLLEN\r\n${len(queue)}\r\n{queue}\r\n".encode())
    return int(replies.readline()[1:])


scraper = http.client.HTTPConnection("127.0.0.1", http_port)


def scrape():
    scraper.request("GET", "/metrics")
    scraper.getresponse().read()


start = length()
while length() == start:  # the drain has begun
    time.sleep(0.001)
windows = []  # (scraped, jobs/s)
while True:
    scraped = len(windows) % 2 == 1
    t0, n0 = time.monotonic(), length()
    end, due = t0 + window, t0
    while (now := time.monotonic()) < end:
        if scraped and now >= due:
            scrape()
            due += 0.1
        time.sleep(max(0.0, (min(due, end) if scraped else end) - time.monotonic()))
    t1, n1 = time.monotonic(), length()
    if n1 == 0:
        break
    windows.append((scraped, (n0 - n1) / (t1 - t0)))
windows = windows[2:]  # start-up
ratios = [
    rate / ((windows[k - 1][1] + windows[k + 1][1]) / 2)
    for k, (scraped, rate) in enumerate(windows)
    if scraped and 0 < k < len(windows) - 1
]
if len(ratios) < 3:
    sys.exit("scrape-windows: the drain was too short for a measure; give it more jobs")
mean = statistics.mean(ratios) * 100
half = 1.96 * statistics.stdev(ratios) / len(ratios) ** 0.5 * 100
print(f"{len(ratios)} scraped windows of {window} s, each against the unscraped windows around it: "
      f"{mean:.1f} % of the drain rate (95 % interval {mean - half:.1f}–{mean + half:.1f} %)")
