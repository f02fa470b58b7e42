#!/usr/bin/env python3
"""Load test for `diffuse serve`: N clients x M requests against one server, all answered?

    python3 bench/serve_load.py --binary build/bin/diffuse [--model DIR] [--clients 3]
        [--requests 10] [--steps 10] [--size 128] [--json]

Starts the server on a free loopback port (the tiny fixture model by default), measures its
resident memory (VmRSS) idle, then runs the clients concurrently (each posting A1111 txt2img
requests one after another; the queue is sized so none is refused), then measures VmRSS again and
the peak (VmHWM). Prints answered/failed counts, latency percentiles and the memory figures.
Reports; asserts nothing except that every request was answered (exit 1 otherwise).
Standard library only.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_kib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def post(url, body, timeout=600):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(here, "..", "build", "bin", "diffuse"))
    ap.add_argument("--model", default=os.path.join(here, "..", "..", "shared", "fixtures",
                                                    "models", "tiny-sd1"))
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    port = free_port()
    server = subprocess.Popen([a.binary, "serve", "--model", a.model, "--port", str(port),
                               "--max-queue", str(a.clients * 2), "--no-access-log"],
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        before = memory_kib(server.pid)
        latencies, failures = [], []
        lock = threading.Lock()

        def client(c):
            for i in range(a.requests):
                body = {"prompt": f"client {c} request {i}", "steps": a.steps, "seed": c * 1000 + i,
                        "width": a.size, "height": a.size}
                t = time.monotonic()
                try:
                    status, reply = post(base + "/sdapi/v1/txt2img", body)
                    ok = status == 200 and len(reply.get("images", [])) == 1
                except Exception as e:  # noqa: BLE001 - every failure is reported
                    ok, status = False, repr(e)
                with lock:
                    (latencies if ok else failures).append(time.monotonic() - t if ok else status)

        start = time.monotonic()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
        after = memory_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0
    result = {
        "clients": a.clients, "requests_per_client": a.requests, "steps": a.steps,
        "size": a.size, "answered": len(latencies), "failed": len(failures),
        "failures": failures[:5], "wall_s": round(wall, 2),
        "throughput_images_per_s": round(len(latencies) / wall, 3) if wall else 0,
        "latency_s": {"p50": round(pick(0.5), 3), "p90": round(pick(0.9), 3),
                      "max": round(latencies[-1], 3) if latencies else 0},
        "rss_mib": {"idle_before": round(before["VmRSS"] / 1024, 1),
                    "after": round(after["VmRSS"] / 1024, 1),
                    "peak": round(after["VmHWM"] / 1024, 1)},
        "server_exit_code": server.returncode,
    }
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['answered']}/{a.clients * a.requests} answered, {result['failed']} failed, "
              f"{result['wall_s']} s ({result['throughput_images_per_s']} images/s); latency p50 "
              f"{result['latency_s']['p50']} s, p90 {result['latency_s']['p90']} s; RSS idle "
              f"{result['rss_mib']['idle_before']} MiB, after {result['rss_mib']['after']} MiB, "
              f"peak {result['rss_mib']['peak']} MiB; server exit {server.returncode}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
