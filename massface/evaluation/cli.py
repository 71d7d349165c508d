"""``massface eval``: verification sets (and optionally IJB-B/C) for a state dict, ONNX or (trusted) TorchScript model.

Examples::

    massface eval --model model.onnx --data-dir faces_webface_112x112 --out eval-out
    massface eval --model ckpt.pt --backbone mobilefacenet --data-dir data --sets lfw,cfp_fp --thresholds exact
    massface eval --model model.onnx --ijb /data/IJB_release/IJBC --out eval-ijbc

Writes ``report.md``, ``results.json`` and PNG/SVG plots into ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="massface eval",
        description="Evaluate a face-embedding model on verification .bin sets (LFW, CFP, AgeDB, CALFW, CPLFW, "
        "VGG2-FP) with insightface's 10-fold protocol, and optionally on IJB-B/C.",
    )
    p.add_argument("--model", required=True, help="checkpoint (massface or a pretrained family, detected), ONNX file, or TorchScript file (needs --trust-torchscript)")
    p.add_argument("--trust-torchscript", action="store_true",
                   help="allow a TorchScript --model (a program: its code runs); refused without this flag")
    from massface.backbones.sources import SOURCES

    p.add_argument("--source", default="auto", choices=("auto", *SOURCES),
                   help="checkpoint family of --model (default: detected from its keys)")
    p.add_argument("--backbone", help="build this zoo entry instead of the detected one (massface.backbones."
                                      "list_backbones); the checkpoint's tensors must fit it")
    p.add_argument("--embedding-size", type=int, default=None, help="embedding size of --backbone")
    p.add_argument("--data-dir", help="directory holding <set>.bin files")
    p.add_argument("--lfw-pairs", help="LFW pairs.txt (with --lfw-root) instead of / besides lfw.bin")
    p.add_argument("--lfw-root", help="aligned LFW image tree root/<name>/<name>_%%04d.<ext> for --lfw-pairs")
    p.add_argument("--lfw-ext", default="jpg", help="image extension under --lfw-root (default: %(default)s)")
    p.add_argument("--sets", help="comma-separated sets (default: every known set found)")
    p.add_argument("--out", default="eval-output", help="output directory (default: %(default)s)")
    p.add_argument("--thresholds", choices=("grid", "exact"), default="grid",
                   help="grid = insightface's arange(0, 4, 0.01) (comparable with papers); exact = sorted search")
    p.add_argument("--variant", choices=("insightface", "massface"), default="insightface",
                   help="embedding: insightface = flip-sum then L2; massface = no flip, mean removed, L2")
    flip = p.add_mutually_exclusive_group()
    flip.add_argument("--flip", dest="flip", action="store_true", default=None, help="force flip test on")
    flip.add_argument("--no-flip", dest="flip", action="store_false", help="force flip test off")
    p.add_argument("--far", type=_floats, default=[1e-3], help="FARs for TAR@FAR (default: 1e-3)")
    p.add_argument("--folds", dest="n_folds", type=int, default=10, help="number of folds, n_folds (default: 10)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-pixels", type=int, default=None,
                   help="refuse images whose header announces more pixels (default: 40,000,000)")
    p.add_argument("--device", default="cpu", help="torch device for torch models (default: cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG/SVG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--ijb", help="IJB release directory (<root>/meta, <root>/loose_crop) to evaluate 1:1 (+1:N)")
    p.add_argument("--ijb-preset", choices=("insightface", "tface"), default="insightface",
                   help="per-image feature flags: insightface = flip-sum, raw norm, x faceness; tface = none")
    p.add_argument("--ijb-far", type=_floats, default=[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    return p


def _run_ijb(model: Any, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from massface.evaluation.ijb import (
        FEATURE_PRESETS,
        extract_ijb_features,
        identify,
        pool_templates,
        read_ijb,
        verify_templates,
    )
    from massface.evaluation.plots import plot_roc

    meta = read_ijb(args.ijb)
    feats = extract_ijb_features(
        model, meta, FEATURE_PRESETS[args.ijb_preset], batch_size=args.batch_size,
        out_path=out / f"{meta.name}_features.npy",
        progress=not args.quiet, max_pixels=args.max_pixels,
    )
    templates, tfeats = pool_templates(feats, meta.template_ids, meta.media_ids)
    tpr, curve = verify_templates(
        templates, tfeats, meta.pair_t1, meta.pair_t2, meta.pair_labels, far_targets=args.ijb_far, return_curve=True
    )
    if not args.no_plots:
        plot_roc({f"{meta.name} (AUC {100 * curve['auc']:.2f})": (curve["fpr"], curve["tpr"])},
                 out / f"{meta.name}_roc", title=f"{meta.name} 1:1", formats=("png", "svg"))
    result: dict[str, Any] = {"preset": args.ijb_preset, "tpr_at_far": tpr, "auc": curve["auc"]}
    if meta.galleries and meta.probes is not None:
        result["1n"] = identify(templates, tfeats, meta.galleries, meta.probes)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``massface eval``; returns the process exit code."""
    args = build_parser().parse_args(None if argv is None else list(argv))
    if args.data_dir is None and args.ijb is None and args.lfw_pairs is None:
        print("massface eval: give --data-dir (verification .bin sets), --lfw-pairs/--lfw-root and/or --ijb",
              file=sys.stderr)
        return 2
    if (args.lfw_pairs is None) != (args.lfw_root is None):
        print("massface eval: --lfw-pairs and --lfw-root go together", file=sys.stderr)
        return 2
    from massface.evaluation.models import load_model
    from massface.evaluation.report import format_table, write_report
    from massface.evaluation.verification_sets import evaluate_bin, evaluate_lfw_pairs, find_bins

    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    try:
        model = load_model(args.model, backbone=args.backbone, embedding_size=args.embedding_size, device=args.device,
                           trust_torchscript=args.trust_torchscript, source=args.source)
        bins = {}
        if args.data_dir is not None:
            sets = [s.strip() for s in args.sets.split(",") if s.strip()] if args.sets else None
            bins = find_bins(args.data_dir, sets)
    except (FileNotFoundError, ValueError) as exc:
        print(f"massface eval: {exc}", file=sys.stderr)
        return 2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(flip=args.flip, batch_size=args.batch_size, variant=args.variant, n_folds=args.n_folds,
                  thresholds=args.thresholds, far_targets=args.far, progress=not args.quiet,
                  max_pixels=args.max_pixels)
    results = {}
    try:
        for name, path in bins.items():
            results[name] = evaluate_bin(model, path, **common)
        if args.lfw_pairs is not None:
            results["lfw_pairs"] = evaluate_lfw_pairs(model, args.lfw_pairs, args.lfw_root, ext=args.lfw_ext,
                                                      **common)
    except (FileNotFoundError, ValueError) as exc:
        print(f"massface eval: {exc}", file=sys.stderr)
        return 1
    meta = {
        "model": str(args.model),
        "backbone": args.backbone,
        "thresholds": args.thresholds,
        "variant": args.variant,
        "flip": args.flip if args.flip is not None else args.variant == "insightface",
        "n_folds": args.n_folds,
    }
    if args.ijb:
        ijb = _run_ijb(model, args, out)
        meta["ijb"] = json.loads(json.dumps(ijb, default=str))
        print(f"IJB ({args.ijb_preset} flags) TPR@FAR: "
              + ", ".join(f"{f:g}: {100 * v:.2f}" for f, v in ijb["tpr_at_far"].items()))
    if results:
        print(format_table(results))
    written = write_report(results, out, title=f"massface eval: {Path(args.model).name}", meta=meta,
                           plots=not args.no_plots)
    print(f"wrote {written['report']} and {written['results']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
