"""TFace-style backbone table: size, MACs, CPU latency and training throughput, beside the published numbers.

For every backbone (``--backbones``, default: the whole zoo) this prints

* params (M), MACs (G) at 112x112 and fp32 size (MiB) from ``massface.backbones.profile``, next to the
  figures published by insightface / TFace (reference trainers.md sections 1.8, 2.3, 5) and their ratio;
* CPU latency at batch 1, median of ``--repeats`` runs after warm-up, for torch eager (NCHW), torch eager with
  ``channels_last``, and onnxruntime (CPUExecutionProvider) on the exported graph; ratios are speed-ups over
  eager measured in the same run (``--modes ... compile`` adds ``torch.compile``, minutes of compilation
  per network on a CPU, so it is not in the default set).  TFace's published latency (OpenVINO on a Xeon
  8255C) is shown for reference -- other hardware and runtime, so only the order of magnitude compares;
* training throughput (images/s): forward + backward + SGD step with a 1000-class linear/CE head at batch
  ``--train-batch`` (default 64).

Every (backbone, measurement) runs in a fresh Python process with ``torch.set_num_threads(1)`` (and one
onnxruntime thread).  ``--quick`` shortens everything: 5 latency repeats, 2 training steps at batch 16 for the
mobile nets and 4 for the residual nets.  A full default run of the deep IResNets at batch 64 on one CPU thread
takes a long time; pick networks with ``--backbones``.

Usage::

    python benchmarks/bench_backbones.py --quick
    python benchmarks/bench_backbones.py --backbones mobilefacenet iresnet50 --train-batch 64
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
from typing import Any

MODES = ("eager", "channels_last", "ort", "train")
OPTIONAL_MODES = ("compile",)  # torch.compile (inductor): minutes of compilation per network on a CPU
LATENCY_MODES = ("eager", "channels_last", "compile", "ort")
PUBLISHED_CPU_MS = {"mobilefacenet": 7.63, "iresnet50": 166.0, "iresnet100": 215.0}  # TFace, OpenVINO, Xeon 8255C
MOBILE = ("mobilefacenet", "mobilefacenet_x2", "mobilefacenet_massface", "ghostnet", "efficientnet_b0",
          "efficientnet_b1")


def _median_ms(fn: Any, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def worker(name: str, mode: str, repeats: int, train_batch: int, train_iters: int) -> dict[str, Any]:
    """One measurement in this (fresh) process; returns a JSON-able dict."""
    import torch

    from massface.backbones import build_backbone, export_onnx

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_backbone(name)
    size = model.input_size
    if mode == "train":
        head = torch.nn.Linear(model.embedding_size, 1000)
        params = list(model.parameters()) + list(head.parameters())
        opt = torch.optim.SGD([p for p in params if p.requires_grad], lr=0.01, momentum=0.9)
        x = torch.randn(train_batch, 3, size, size)
        y = torch.randint(0, 1000, (train_batch,))
        model.train()

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(head(model(x)), y)
            loss.backward()
            opt.step()

        ms = _median_ms(step, warmup=1, repeats=train_iters)
        return {"img_per_s": train_batch / (ms / 1e3), "batch": train_batch}
    model.eval()
    x = torch.randn(1, 3, size, size)
    if mode in ("eager", "channels_last", "compile"):
        if mode == "channels_last":
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        if mode == "compile":
            model = torch.compile(model)

        def infer() -> None:
            with torch.inference_mode():
                model(x)

        return {"ms": _median_ms(infer, warmup=2, repeats=repeats)}
    if mode == "ort":
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(model, os.path.join(tmp, f"{name}.onnx"))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {"data": x.numpy()}
        return {"ms": _median_ms(lambda: session.run(None, feed), warmup=2, repeats=repeats)}
    raise ValueError(f"unknown mode {mode!r}; allowed: {MODES + OPTIONAL_MODES}")


def run_isolated(name: str, mode: str, args: argparse.Namespace, train_batch: int, timeout: float) -> dict[str, Any]:
    """Run :func:`worker` in a fresh interpreter (one thread) and parse its JSON line."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, mode, "--repeats", str(args.repeats),
           "--train-batch", str(train_batch), "--train-iters", str(args.train_iters)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout {timeout:.0f}s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.3f}"


def main(argv: list[str] | None = None) -> int:
    from massface.backbones.registry import ALIASES, BACKBONES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=None, help="subset of the zoo (default: all)")
    parser.add_argument("--quick", action="store_true", help="5 repeats, 2 training steps at small batch")
    parser.add_argument("--repeats", type=int, default=20, help="latency repeats (median)")
    parser.add_argument("--train-batch", type=int, default=64, help="training batch (quick: 16 mobile / 4 residual)")
    parser.add_argument("--train-iters", type=int, default=3, help="timed training steps (median)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES + OPTIONAL_MODES,
                        help=f"measurements (default: {' '.join(MODES)}; 'compile' adds torch.compile latency)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement process")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.repeats, args.train_batch, args.train_iters)))
        return 0
    if args.quick:
        args.repeats, args.train_iters = 5, 2
    names = [ALIASES.get(n.lower(), n.lower()) for n in args.backbones] if args.backbones else list(BACKBONES)

    import torch

    from massface.backbones import build_backbone, get_spec, profile

    print(f"torch {torch.__version__}, 1 thread, fresh process per measurement; latency = median ms at batch 1")
    lat_modes = [m for m in LATENCY_MODES if m in args.modes]
    lat_titles = {"eager": "eager ms", "channels_last": "channels_last ms (speed-up)",
                  "compile": "compile ms (speed-up)", "ort": "onnxruntime ms (speed-up)"}
    columns = ["backbone", "params M (pub, ratio)", "GMACs (pub, ratio)", "fp32 MiB (pub)"]
    columns += [lat_titles[m] for m in lat_modes] + ["TFace CPU ms*", "train img/s (batch)"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for name in names:
        spec = get_spec(name)
        with torch.device("meta"):
            prof = profile(build_backbone(name))
        params_m, gmacs = prof["params"] / 1e6, prof["macs"] / 1e9
        train_batch = args.train_batch
        if args.quick:
            train_batch = 16 if name in MOBILE else 4
        res = {m: run_isolated(name, m, args, train_batch, args.timeout) for m in args.modes}
        eager = res.get("eager", {}).get("ms")

        def lat(mode: str) -> str:
            r = res.get(mode)
            if r is None:
                return "-"
            if "error" in r:
                return f"error: {r['error'][:40]}"
            return f"{r['ms']:.2f}" + ("" if mode == "eager" else f" ({_ratio(eager, r['ms'])}x)")

        train = res.get("train")
        train_txt = "-" if train is None else (
            f"error: {train['error'][:40]}" if "error" in train else f"{train['img_per_s']:.1f} ({train['batch']})"
        )
        print(
            f"| {name} | {params_m:.2f} ({_fmt(spec.published_params, '.2f')}, "
            f"{_ratio(params_m, spec.published_params)})"
            f" | {gmacs:.3f} ({_fmt(spec.published_gmacs, '.3f')}, {_ratio(gmacs, spec.published_gmacs)})"
            f" | {prof['size_mb']:.1f} ({_fmt(spec.published_size_mb, '.1f')})"
            + "".join(f" | {lat(m)}" for m in lat_modes)
            + f" | {_fmt(PUBLISHED_CPU_MS.get(name), '.2f')} | {train_txt} |",
            flush=True,
        )
    print("* TFace README: OpenVINO on a Xeon 8255C (different runtime and machine; order of magnitude only).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
