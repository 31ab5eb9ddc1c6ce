#!/usr/bin/env python3
"""Replay `enclave bench serve --dump-prompts FILE` against llama-server.

    llama-server -m MODEL.gguf -t 2 -c $((8 * 4096)) --parallel 8 --port 8090
    tests/reference/replay_llama_server.py http://127.0.0.1:8090 FILE

Each user (one thread) sends its prompts (token ids, exactly what Enclave's
planner built) one after another to /completion, streaming, greedy, all
users starting at once: the same burst `enclave bench serve` runs on its own
engine. Prints time to the first generated piece and to the whole answer
(p50/p95), aggregate tokens/s, in the same terms. Standard library only.
"""
import json
import sys
import threading
import time
import urllib.request
from collections import defaultdict


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[round((len(values) - 1) * p)]


def ask(url, prompt, n_predict):
    body = json.dumps({
        "prompt": prompt,
        "n_predict": n_predict,
        "temperature": 0.0,
        "top_k": 1,
        "stream": True,
        "cache_prompt": True,
    }).encode()
    request = urllib.request.Request(url + "/completion", data=body,
                                     headers={"Content-Type": "application/json"})
    started = time.monotonic()
    first, tokens = None, 0
    with urllib.request.urlopen(request, timeout=3600) as response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if event.get("content") and first is None:
                first = time.monotonic() - started
            if event.get("stop"):
                tokens = event.get("tokens_predicted", tokens)
                break
    whole = time.monotonic() - started
    return (first if first is not None else whole), whole, tokens


def main():
    url, dump = sys.argv[1].rstrip("/"), sys.argv[2]
    by_user = defaultdict(list)
    for line in open(dump):
        row = json.loads(line)
        by_user[row["user"]].append(row)
    results, failures, lock = [], [], threading.Lock()

    def user(rows):
        for row in sorted(rows, key=lambda r: r["turn"]):
            try:
                timing = ask(url, row["prompt"], row["n_predict"])
                with lock:
                    results.append(timing)
            except Exception as e:  # noqa: BLE001 - report and go on
                with lock:
                    failures.append(str(e))

    threads = [threading.Thread(target=user, args=(rows,)) for rows in by_user.values()]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    firsts = [r[0] for r in results]
    wholes = [r[1] for r in results]
    tokens = sum(r[2] for r in results)
    print(f"{len(results)} answers ({len(failures)} failed) in {wall:.1f} s: "
          f"first token p50 {percentile(firsts, .5):.2f} s, p95 {percentile(firsts, .95):.2f} s; "
          f"whole answer p50 {percentile(wholes, .5):.2f} s, p95 {percentile(wholes, .95):.2f} s; "
          f"{tokens} tokens, {tokens / wall:.1f} tokens/s")
    for f in failures[:3]:
        print("failed:", f, file=sys.stderr)


if __name__ == "__main__":
    main()
