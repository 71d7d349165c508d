"""ONNX export of backbones with a dynamic batch axis, an onnxruntime parity check, and ``massface export-onnx``.

The graph has one input ``"data"`` of shape ``(batch, 3, S, S)`` (RGB, normalised as (x/255 - 0.5)/0.5) and one
output ``"embedding"`` of shape ``(batch, D)``.  Every backbone flattens with ``flatten(1)`` rather than a
reshape to a traced batch size, so the exported model runs at any batch (insightface #2406: the ``mbf`` export
broke at batch > 1).  ``onnx`` / ``onnxruntime`` are imported only when these functions are called.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from massface._torch import eval_mode
from massface.backbones.pretrained import SOURCES, load_weights


@contextlib.contextmanager
def _on_cpu(model: nn.Module) -> Iterator[None]:
    """Run the block with ``model`` on the CPU (exporters and onnxruntime compare there), then move it back."""
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    model.cpu()
    try:
        yield
    finally:
        model.to(device)


def _input_size(model: nn.Module, input_size: int | None) -> int:
    if input_size is not None:
        return input_size
    return int(getattr(model, "input_size", 112))


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    dynamic_batch: bool = True,
    input_size: int | None = None,
    opset: int = 17,
) -> Path:
    """Export ``model`` (in eval mode, on CPU) to ``path``; returns the path.

    ``dynamic_batch=True`` names axis 0 of input and output ``"batch"``; otherwise the graph is fixed to
    batch 1.  ``input_size`` defaults to the model's ``input_size`` attribute (112).  Uses the TorchScript
    exporter (``dynamo=False``), which needs no extra package; the training flag and device of ``model`` are
    restored afterwards.  Cost: one traced forward at batch 1 plus serialisation of the weights.
    """
    out = Path(path)
    if out.parent and not out.parent.exists():
        raise FileNotFoundError(f"export_onnx: directory {out.parent} does not exist")
    size = _input_size(model, input_size)
    first = next(model.parameters(), None)
    if first is not None and first.device.type == "meta":
        raise ValueError("export_onnx: the model lives on the meta device (no weights); build it on a real device")
    dummy = torch.zeros(1, 3, size, size)
    axes = {"data": {0: "batch"}, "embedding": {0: "batch"}} if dynamic_batch else None
    with _on_cpu(model), eval_mode(model, no_grad=False), warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export + onnxscript (an extra
        # dependency); it still writes opset-17 graphs and is what the tests check, so its deprecation
        # notices are silenced here.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx.*")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            model,
            (dummy,),
            str(out),
            input_names=["data"],
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    return out


def onnx_max_abs_diff(
    model: nn.Module,
    path: str | os.PathLike[str],
    batch_sizes: Sequence[int] = (1, 7),
    seed: int = 0,
    input_size: int | None = None,
    relative: bool = False,
) -> dict[int, float]:
    """Max |torch - onnxruntime| of the embeddings at each batch size, on seeded N(0, 1) inputs.

    ``relative=True`` divides by ``max(1, max |torch|)`` -- for untrained weights, whose embeddings can be
    large.  The torch side runs ``model`` in eval mode on CPU under ``torch.no_grad``.  Cost: one forward per
    batch size in each runtime.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("onnxruntime is needed to check an ONNX export: pip install 'massface[onnx]'") from exc
    size = _input_size(model, input_size)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    diffs: dict[int, float] = {}
    with _on_cpu(model), eval_mode(model):
        for batch in batch_sizes:
            x = torch.randn(batch, 3, size, size, generator=generator)
            ref = model(x).numpy()
            (got,) = session.run(["embedding"], {"data": x.numpy()})
            if got.shape != ref.shape:
                raise AssertionError(f"ONNX output shape {got.shape} != torch {ref.shape} at batch {batch}")
            scale = max(1.0, float(abs(ref).max())) if relative else 1.0
            diffs[batch] = float(abs(got - ref).max()) / scale
    return diffs


def _parse_option(text: str) -> tuple[str, Any]:
    """``--set KEY=VALUE``: VALUE is parsed as YAML by the training config's override parser (one
    implementation): ``false`` / ``False`` / ``no`` are False, ``0.4`` a float, ``[64, 128]`` a list, ``null``
    None. A malformed value or a key that is not an option name is an argparse error naming the key."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key.isidentifier():
        raise argparse.ArgumentTypeError(f"--set {text!r}: {key!r} is not an option name")
    from massface.training.config import ConfigError, parse_value  # the CLI's parser; the module stays light

    try:
        value = parse_value(raw, key, f"--set {text!r}")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return key, value


def _check_options(family: type[nn.Module], options: list[tuple[str, Any]]) -> dict[str, Any]:
    """Type-check ``--set`` values against the constructor's defaults (bool / int / float / str options);
    unknown names are left to :func:`~massface.backbones.registry.build_backbone`, which lists the valid ones."""
    params = inspect.signature(family.__init__).parameters
    out: dict[str, Any] = {}
    for key, value in options:
        if key in out:
            raise ValueError(f"--set {key} is given twice")
        default = params[key].default if key in params else inspect.Parameter.empty
        if isinstance(default, bool):
            ok, want = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            want = "a finite number"
        elif isinstance(default, str):
            ok, want = isinstance(value, str), "a string"
        else:
            ok, want = True, ""
        if not ok:
            raise ValueError(f"--set {key}: expected {want}, got {value!r}")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    """``massface export-onnx``: build a backbone, load weights, export to ONNX and check it with onnxruntime."""
    from .registry import build_backbone, get_spec, list_backbones

    parser = argparse.ArgumentParser(
        prog="massface export-onnx",
        description="Export a massface backbone to ONNX (input 'data' (N,3,S,S), output 'embedding' (N,D)).",
    )
    parser.add_argument("--backbone", required=True, help=f"one of: {', '.join(list_backbones())}")
    parser.add_argument("--output", required=True, help="path of the .onnx file to write")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint to load (strict; massface or a pretrained family); random weights if omitted")
    parser.add_argument("--source", default="auto", choices=("auto", *SOURCES),
                        help="checkpoint family of --checkpoint (default: detected from its keys)")
    parser.add_argument("--embedding-size", type=int, default=None, help="embedding width D (preset default)")
    parser.add_argument("--input-size", type=int, default=112, help="square input side (default 112)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--static-batch", action="store_true", help="fix the batch axis to 1")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime parity check")
    parser.add_argument(
        "--atol", type=float, default=1e-4, help="parity tolerance on max|diff| / max(1, max|torch|) (default 1e-4)"
    )
    parser.add_argument(
        "--set", dest="options", action="append", type=_parse_option, default=[], metavar="KEY=VALUE",
        help="backbone option, YAML value, e.g. --set fc_bn=false --set dropout=0.2 (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        options = _check_options(get_spec(args.backbone).family, args.options)
        model = build_backbone(args.backbone, args.embedding_size, input_size=args.input_size, **options)
        if args.checkpoint is not None:
            load_weights(model, args.checkpoint, source=args.source)
        path = export_onnx(model, args.output, dynamic_batch=not args.static_batch, opset=args.opset)
    except (ValueError, FileNotFoundError, TypeError) as exc:  # CheckpointError is a ValueError
        print(f"massface export-onnx: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    if args.no_verify:
        return 0
    diffs = onnx_max_abs_diff(model, path, (1,) if args.static_batch else (1, 7), relative=True)
    report = ", ".join(f"batch {b}: {d:.2e}" for b, d in diffs.items())
    ok = all(d <= args.atol for d in diffs.values())
    print(
        f"onnxruntime vs torch max |diff| / max(1, max |torch|): {report} -> {'OK' if ok else 'FAIL'} "
        f"(tolerance {args.atol:g})"
    )
    return 0 if ok else 1
