"""Decode + horizontal flip + normalise throughput of 112×112 JPEGs on one core: massface readers vs a plain
per-file ``cv2.imdecode`` loop over an image folder (the baseline), measured in the same run.

Each round runs every configuration in a fresh process with one thread (torch, OpenCV), configurations
interleaved so that load from other processes hits them alike; a process reads every image twice (warm-up pass
discarded). Throughput is images per second of the process's CPU time (= per core, robust to a shared
machine); wall-clock images/s is shown too. The table gives the median over ``--repeats`` rounds, the ratio to
the baseline, and the issue's target (>= 1500 images/s per core). ``--quick`` uses fewer images and rounds.

    python benchmarks/bench_data.py [--quick] [--images N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

TARGET = 1500.0
CONFIGS = {
    "folder: open + cv2.imdecode (baseline)": "baseline",
    "RecordDataset (.rec)": "rec",
    "TFRecordIndexDataset (CRC32C checked)": "tfrecord",
    "TFRecordIndexDataset (no data CRC)": "tfrecord_nocrc",
    "FolderDataset": "folder",
}


def make_faces(n: int, seed: int = 0) -> list[tuple[bytes, int]]:
    """n smooth face-like 112×112 JPEGs (quality 95, like insightface packs), 10 per identity."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:112, 0:112].astype(np.float32)
    out = []
    for i in range(n):
        bg = rng.uniform(0, 255, 3)
        img = np.empty((112, 112, 3), np.float32)
        for c in range(3):
            img[..., c] = bg[c] + 40 * np.sin(xx / rng.uniform(8, 30) + rng.uniform(0, 6)) * np.cos(yy / 25)
        skin = rng.uniform(90, 230, 3)
        cv2.ellipse(img, (56 + int(rng.integers(-6, 7)), 60), (34, 44), 0, 0, 360, skin.tolist(), -1)
        for x in (42, 70):
            cv2.circle(img, (x, 52), 5, (30, 30, 30), -1)
        cv2.ellipse(img, (56, 88), (12, 5), 0, 0, 180, (60, 20, 30), 2)
        img = cv2.GaussianBlur(np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8), (3, 3), 0)
        ok, enc = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), 95])
        out.append((enc.tobytes(), i // 10))
    return out


def flip_normalise(img: np.ndarray, flip: bool) -> np.ndarray:
    """Horizontal flip (when asked) and (x/255 - 0.5)/0.5 as float32 CHW."""
    if flip:
        img = cv2.flip(img, 1)
    x = img.astype(np.float32)
    x -= 127.5
    x *= 1.0 / 127.5
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def prepare(directory: str, n: int) -> None:
    from massface.data.recordio import write_records
    from massface.data.tfrecord import write_tfrecords
    faces = make_faces(n)
    write_records(os.path.join(directory, "rec"), faces)
    write_tfrecords(os.path.join(directory, "tfr"), faces)
    for i, (data, label) in enumerate(faces):
        d = os.path.join(directory, "folder", f"{label:05d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i:06d}.jpg"), "wb") as f:
            f.write(data)


def run_worker(kind: str, directory: str) -> tuple[float, float]:
    """(CPU-time, wall-clock) images/s of one pass over the set after a warm-up pass (fresh process, one thread)."""
    import torch
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if kind == "baseline":
        paths = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(directory, "folder")) for f in fs)

        def get(i: int) -> np.ndarray:
            with open(paths[i], "rb") as f:
                data = f.read()
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            return flip_normalise(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), i % 2 == 1)
        n = len(paths)
    else:
        if kind == "rec":
            from massface.data.recordio import RecordDataset
            ds = RecordDataset(os.path.join(directory, "rec", "train.rec"))
        elif kind.startswith("tfrecord"):
            from massface.data.tfrecord import TFRecordIndexDataset
            ds = TFRecordIndexDataset(os.path.join(directory, "tfr", "train.index"), os.path.join(directory, "tfr"),
                                      verify_crc=kind == "tfrecord")
        else:
            from massface.data.folder import FolderDataset
            ds = FolderDataset(os.path.join(directory, "folder"))

        def get(i: int) -> np.ndarray:
            return flip_normalise(ds[i][0], i % 2 == 1)
        n = len(ds)
    for i in range(n):  # warm-up: page cache, lazy tables, descriptors
        get(i)
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        get(i)
    return n / (time.process_time() - c0), n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="300 images, 2 rounds")
    p.add_argument("--images", type=int, default=None, help="number of images (default 2000, quick 300)")
    p.add_argument("--repeats", type=int, default=None, help="rounds (fresh process per configuration; default 3)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 3)
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.data)))
        return 0
    n = args.images or (300 if args.quick else 2000)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="massface_bench_data_") as tmp:
        prepare(tmp, n)
        for _ in range(repeats):
            for name, kind in CONFIGS.items():
                out = subprocess.run([sys.executable, __file__, "--worker", kind, "--data", tmp],
                                     check=True, capture_output=True, text=True)
                runs[name].append(tuple(json.loads(out.stdout.strip().splitlines()[-1])))
    cpu = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
    wall = {name: statistics.median(r[1] for r in rs) for name, rs in runs.items()}
    base = cpu["folder: open + cv2.imdecode (baseline)"]
    print(f"decode + flip + normalise, {n} JPEGs 112x112 q95, 1 thread, median of {repeats} rounds")
    print(f"{'configuration':42s} {'img/s/core':>10s} {'vs baseline':>12s} {'vs 1500/s':>10s} {'wall img/s':>11s}")
    for name in CONFIGS:
        print(f"{name:42s} {cpu[name]:10.0f} {cpu[name] / base:11.2f}x {cpu[name] / TARGET:9.2f}x {wall[name]:11.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
