#!/usr/bin/env python3
"""http_rehome.py HOST PORT PATH SIZE CPU_A CPU_B BEFORE AFTER [ROUNDS]: a
keep-alive client (Python's http.client) asking random 2 KiB ranges of
PATH, BEFORE requests from CPU_A, then AFTER from CPU_B (the process moves
with sched_setaffinity, as a client's thread moves between CPUs), ROUNDS
times (1), each round on a new connection. The
server may end the connection after an answer (Connection: close); the
client then reconnects. Checks each range against the file given on
stdin. Prints one line: 'closes_before N closes_after N first_close_at K
closes_late N bad N' (first_close_at: requests after the move; -1: none;
closes_late: closes after the first close)."""
import http.client
import os
import random
import sys


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    size = int(sys.argv[4])
    cpu_a, cpu_b = int(sys.argv[5]), int(sys.argv[6])
    before, after = int(sys.argv[7]), int(sys.argv[8])
    rounds = int(sys.argv[9]) if len(sys.argv) > 9 else 1
    data = sys.stdin.buffer.read()
    if len(data) != size:
        print("bad input size", len(data))
        return 2
    rng = random.Random(7)
    counts = {"closes_before": 0, "closes_after": 0, "first_close_at": -1,
              "closes_late": 0, "bad": 0}
    for _ in range(rounds):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        os.sched_setaffinity(0, {cpu_a})
        for i in range(before + after):
            if i == before:
                os.sched_setaffinity(0, {cpu_b})
            start = rng.randrange(0, (size - 2048) // 2048 + 1) * 2048
            conn.request("GET", path, headers={"Range": "bytes=%d-%d" % (start, start + 2047)})
            r = conn.getresponse()
            body = r.read()
            if r.status != 206 or body != data[start:start + 2048]:
                counts["bad"] += 1
            if (r.getheader("Connection") or "").lower() == "close":
                conn.close()  # the next request opens a new connection
                if i < before:
                    counts["closes_before"] += 1
                else:
                    counts["closes_after"] += 1
                    if counts["first_close_at"] < 0:
                        counts["first_close_at"] = i - before
                    else:
                        counts["closes_late"] += 1
        conn.close()
    print(" ".join("%s %d" % kv for kv in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
