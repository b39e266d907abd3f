"""Memory a tracking server needs to take and serve large artifacts: Causeway's server against
`mlflow server`, same machine, same uploads, one run. Prints the servers' peak resident memory
above idle and the ratio.

    python bench/mlflow/upload_memory.py --causeway target/release/causeway [--mib 256] [--parts 4]

Measured, for each server (SQLite backend, proxied artifacts):
  one upload      PUT mlflow-artifacts/artifacts/... of --mib MiB, sent in 1 MiB chunks
  one download    GET of that file, read by the client in 1 MiB chunks
  multipart       --parts parts of --mib MiB each through mpu/create, the part URLs and mpu/complete
                  (Causeway only: `mlflow server` answers multipart uploads only for object stores)
Peak memory is the largest resident set of the server's process tree, sampled every 20 ms while
the uploads run, minus its resident set before they started.
"""

import argparse
import os
import sys
import tempfile
import threading

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Server, tree_rss_kib  # noqa: E402

CHUNK = 1 << 20


def body(mib):
    chunk = bytes(range(256)) * (CHUNK // 256)
    for _ in range(mib):
        yield chunk


class PeakMemory:
    """Samples a process tree's resident memory until stopped (a measurement, not a wait)."""

    def __init__(self, pid):
        self.pid, self.peak_kib, self.done = pid, tree_rss_kib(pid), threading.Event()
        self.thread = threading.Thread(target=self.sample)

    def sample(self):
        while not self.done.wait(0.02):
            self.peak_kib = max(self.peak_kib, tree_rss_kib(self.pid))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exception):
        self.done.set()
        self.thread.join()


def upload(server, path, mib):
    response = requests.put(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{path}", data=body(mib), timeout=600)
    response.raise_for_status()


def download(server, path, mib):
    response = requests.get(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{path}", stream=True, timeout=600)
    response.raise_for_status()
    received = sum(len(chunk) for chunk in response.iter_content(CHUNK))
    if received != mib * CHUNK:
        raise RuntimeError(f"downloaded {received} bytes, expected {mib * CHUNK}")


def multipart(server, path, parts, mib):
    base = f"{server.url}/api/2.0/mlflow-artifacts/mpu"
    created = requests.post(f"{base}/create/{path}", json={"path": path, "num_parts": parts}, timeout=60)
    created.raise_for_status()
    answer = created.json()
    sent = []
    for credential in answer["credentials"]:
        put = requests.put(credential["url"], data=body(mib), timeout=600)
        put.raise_for_status()
        sent.append({"part_number": credential["part_number"], "etag": put.headers.get("ETag", "")})
    done = requests.post(
        f"{base}/complete/{path}",
        json={"path": path, "upload_id": answer["upload_id"], "parts": sent},
        timeout=600,
    )
    done.raise_for_status()


def measure(kind, args):
    with tempfile.TemporaryDirectory(prefix=f"upload-{kind}-") as workdir:
        server = Server(kind, args.causeway, args.mlflow, workdir)
        try:
            idle = tree_rss_kib(server.process.pid)
            results = {}
            with PeakMemory(server.process.pid) as peak:
                upload(server, "bench/one.bin", args.mib)
            results["one upload"] = (peak.peak_kib - idle) / 1024
            idle = tree_rss_kib(server.process.pid)
            with PeakMemory(server.process.pid) as peak:
                download(server, "bench/one.bin", args.mib)
            results["one download"] = (peak.peak_kib - idle) / 1024
            if kind == "causeway":
                idle = tree_rss_kib(server.process.pid)
                with PeakMemory(server.process.pid) as peak:
                    multipart(server, "bench/parts.bin", args.parts, args.mib)
                results["multipart"] = (peak.peak_kib - idle) / 1024
            return results
        finally:
            server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--causeway", required=True)
    parser.add_argument("--mlflow", default=os.path.join(os.path.dirname(sys.executable), "mlflow"))
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--parts", type=int, default=4)
    args = parser.parse_args()
    causeway = measure("causeway", args)
    mlflow = measure("mlflow", args)
    print(f"{'peak memory above idle (MiB)':<40}{'causeway':>12}{'mlflow':>12}")
    print(f"{f'one upload of {args.mib} MiB':<40}{causeway['one upload']:>12.1f}{mlflow['one upload']:>12.1f}")
    print(f"{f'one download of {args.mib} MiB':<40}{causeway['one download']:>12.1f}{mlflow['one download']:>12.1f}")
    print(f"{f'multipart, {args.parts} x {args.mib} MiB':<40}{causeway['multipart']:>12.1f}{'-':>12}")
    for label in ("one upload", "one download"):
        print(f"ratio {label} (mlflow / causeway): {mlflow[label] / max(causeway[label], 0.1):.1f}x")


if __name__ == "__main__":
    main()
