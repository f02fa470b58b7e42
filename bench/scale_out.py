#!/usr/bin/env python3
"""Throughput of `diffuse worker` processes behind one Redis queue (docs/SCALE-OUT.md).

Starts a private redis-server on a free loopback port, N workers on the tiny fixture model, and
`diffuse batch` over J jobs; reports jobs per second for each N. Standard library only.

    python3 bench/scale_out.py --binary build/bin/diffuse --workers 1 2 --jobs 24
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_redis(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    sys.exit("redis-server did not start")


def run(args, workers, tmp):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    rdir = os.path.join(tmp, f"redis-{workers}")
    os.makedirs(rdir)
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--dir", rdir, "--save", ""], stdout=subprocess.DEVNULL)
    wait_for_redis(port)
    models = os.path.join(tmp, "models")
    procs = []
    try:
        for i in range(workers):
            procs.append(subprocess.Popen(
                [args.binary, "worker", "--queue", url, "--models", models, "--model",
                 "tiny-sd1", "--name", f"w{i}", "--threads", str(args.threads)],
                stderr=subprocess.DEVNULL))
        jobs = os.path.join(tmp, f"jobs-{workers}.jsonl")
        with open(jobs, "w") as f:
            for j in range(args.jobs):
                f.write(json.dumps({"model": "tiny-sd1", "id": f"n{workers}-j{j}",
                                    "prompt": f"bench {j}", "steps": args.steps,
                                    "width": args.size, "height": args.size, "seed": j}) + "\n")
        time.sleep(2.0)  # let the workers load the model: the batch then measures generation
        start = time.time()
        subprocess.run([args.binary, "batch", "--queue", url, jobs, "-o",
                        os.path.join(tmp, f"out-{workers}")], check=True,
                       stderr=subprocess.DEVNULL)
        return time.time() - start
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        redis.terminate()
        redis.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="build/bin/diffuse")
    ap.add_argument("--model", default="/work/shared/fixtures/models/tiny-sd1")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--jobs", type=int, default=24)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="--threads of each worker")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "models"))
        os.symlink(os.path.abspath(args.model), os.path.join(tmp, "models", "tiny-sd1"))
        print(f"{args.jobs} jobs, {args.size}x{args.size}, {args.steps} steps, "
              f"{args.threads} thread(s) per worker, {os.cpu_count()} CPUs")
        print("| workers | wall s | jobs/s | speed-up |")
        print("|---|---|---|---|")
        base = None
        for n in args.workers:
            wall = run(args, n, tmp)
            base = base or wall
            print(f"| {n} | {wall:.2f} | {args.jobs / wall:.2f} | {base / wall:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
