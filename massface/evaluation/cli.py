"""``massface eval``: verification sets (and optionally IJB-B/C) for a state dict, ONNX or (trusted) TorchScript model.

Examples::

    massface eval --model model.onnx --data-dir faces_webface_112x112 --out eval-out
    massface eval --model ckpt.pt --backbone mobilefacenet --data-dir data --sets lfw,cfp_fp --thresholds exact
    massface eval --model model.onnx --ijb /data/IJB_release/IJBC --out eval-ijbc
    massface eval --model model.onnx --tinyface /data/tinyface/Testing_Set --out eval-tinyface   # rank-1/5/20

Writes ``report.md``, ``results.json`` and PNG/SVG plots into ``--out`` and prints a table.

Fairness and quality (both read at the first ``--far``)::

    massface eval --model m.onnx --data-dir rfw --sets African_test,Asian_test,Caucasian_test,Indian_test --groups sets
    massface eval --model m.onnx --data-dir data --sets lfw --groups lfw_groups.txt   # one label per pair
    massface eval --model m.onnx --data-dir data --quality norm        # or --quality scores.txt (one per image)

``--groups`` adds a ``groups`` entry (per-group accuracy, SER, TPR/FPR at one global threshold;
:mod:`massface.evaluation.fairness`) and ``--quality`` a ``quality`` entry (error-versus-discard curves;
:mod:`massface.evaluation.quality`) to ``results.json``, with their sections and plots in ``report.md``.
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
    p.add_argument("--groups", metavar="FILE|sets",
                   help="fairness table (per-group accuracy, SER, TPR/FPR at one global threshold at the first "
                        "--far): FILE = one group label per pair of the one evaluated set, in its pair order ('-' = "
                        "no group, '#' comments); 'sets' = each evaluated set is one group (RFW as TFace's "
                        "African_test.bin ... via --sets)")
    p.add_argument("--quality", metavar="norm|FILE",
                   help="error-versus-discard curve at the first --far: 'norm' = feature norm of the raw model "
                        "output (MagFace/AdaFace; one extra forward pass per image), FILE = one quality score per "
                        "image of the one evaluated set, in its image order (pair k = images 2k, 2k+1)")
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
    p.add_argument("--ijb-1n", choices=("fpir", "ijb_1n"), default="fpir",
                   help="1:N definition: fpir = per gallery, rank 1 and above the non-mated top-1 threshold "
                        "(ijb_evals, the default); ijb_1n = the older joined-gallery recall (not comparable)")
    p.add_argument("--tinyface", metavar="DIR",
                   help="TinyFace test split (DIR holding Probe/, Gallery_Match/, Gallery_Distractor/, or its "
                        "Testing_Set/): closed-set rank-1/5/20 (massface.evaluation.tinyface)")
    p.add_argument("--tinyface-size", type=int, default=112, metavar="S",
                   help="TinyFace images are resized to S x S for the model (default: %(default)s)")
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
        result["1n"] = identify(templates, tfeats, meta.galleries, meta.probes, definition=args.ijb_1n)
    return result


def _read_groups_quality(args: argparse.Namespace, names: list[str]) -> tuple[Any, Any]:
    """``--groups`` / ``--quality`` read and checked against the sets to evaluate, before any embedding.

    Returns ``(groups, quality)``: ``None``, ``"sets"`` or the per-pair labels; ``None``, ``"norm"`` or the
    per-image scores. ValueError (a DataFormatError naming file and line for a bad file) otherwise.
    """
    from massface.evaluation.fairness import read_pair_groups
    from massface.evaluation.quality import read_quality_scores

    groups: Any = None
    quality: Any = None
    if args.groups is not None:
        if args.groups == "sets":
            if len(names) < 2:
                raise ValueError(f"--groups sets makes each evaluated set one group and needs at least two; got {names}")
            groups = "sets"
        elif len(names) != 1:
            raise ValueError(f"--groups FILE labels the pairs of one set, but {len(names)} sets are evaluated "
                             f"({names}); name one with --sets, or use --groups sets")
        else:
            groups = read_pair_groups(args.groups)
    if args.quality is not None:
        if args.quality == "norm":
            quality = "norm"
        elif len(names) != 1:
            raise ValueError(f"--quality FILE scores the images of one set, but {len(names)} sets are evaluated "
                             f"({names}); name one with --sets, or use --quality norm")
        else:
            quality = read_quality_scores(args.quality)
    return groups, quality


def _run_groups_quality(model: Any, args: argparse.Namespace, bins: dict[str, Path], results: dict[str, Any],
                        groups: Any, quality: Any, out: Path) -> tuple[dict[str, Any], list[str]]:
    """The ``--groups`` table and the ``--quality`` curves from the evaluated sets' distances: the JSON entries
    and the report.md lines to add (plots written to ``out`` unless ``--no-plots``)."""
    import numpy as np

    extra: dict[str, Any] = {}
    md: list[str] = []
    far = float(args.far[0]) if args.far else 1e-3
    if groups is not None:
        from massface.evaluation.fairness import evaluate_group_distances, format_group_table
        from massface.evaluation.plots import plot_group_roc

        if groups == "sets":
            d = np.concatenate([r.distances for r in results.values()])
            y = np.concatenate([r.issame for r in results.values()])
            labels = [name for name, r in results.items() for _ in range(r.num_pairs)]
        else:
            (name, r), = results.items()
            if len(groups) != r.num_pairs:
                raise ValueError(f"{args.groups}: {len(groups)} group labels for the {r.num_pairs} pairs of {name} "
                                 "(one label per pair, in the set's pair order)")
            d, y, labels = r.distances, r.issame, groups
        g = evaluate_group_distances(d, y, labels, far=far, n_folds=args.n_folds, thresholds=args.thresholds)
        print(format_group_table(g, markdown=False))
        extra["groups"] = {"source": args.groups, **g.summary()}
        md += ["## Groups", "", format_group_table(g), "",
               "Per-group accuracy: the 10-fold protocol on each group's pairs; SER = max error / min error; "
               "TPR/FPR at one global threshold chosen on all pairs for the FMR target.", ""]
        if not args.no_plots:
            plot_group_roc(g, out / "group_roc", formats=("png", "svg"))
            md += ["![ROC per group](group_roc.png)", ""]
    if quality is not None:
        from massface.evaluation.plots import plot_error_vs_discard
        from massface.evaluation.quality import error_vs_discard, feature_norms, format_quality_table

        curves = {}
        for name, r in results.items():
            if isinstance(quality, str):  # "norm"
                q = feature_norms(model, _set_images(args, bins, name), batch_size=args.batch_size,
                                  device=args.device, progress=not args.quiet)
            else:
                q = quality
                if q.size != 2 * r.num_pairs:
                    raise ValueError(f"{args.quality}: {q.size} quality scores for the {2 * r.num_pairs} images of "
                                     f"{name} (one per image, in the set's image order)")
            curves[name] = error_vs_discard(r.distances, r.issame, q[0::2], q[1::2], fmr=far)
        print(format_quality_table(curves, markdown=False))
        extra["quality"] = {"source": args.quality, "sets": {n: c.summary() for n, c in curves.items()}}
        md += ["## Error versus discard", "", format_quality_table(curves), "",
               f"Quality: {args.quality}; pair quality = min of its two images; threshold fixed once on all pairs at "
               f"FMR <= {far:g}; FNMR of the remaining genuine pairs as the lowest-quality pairs are discarded; "
               "pAUC up to the limit, normalised by the random-discard baseline FNMR(0) · limit.", ""]
        if not args.no_plots:
            plot_error_vs_discard(curves, out / "error_vs_discard", formats=("png", "svg"))
            md += ["![error versus discard](error_vs_discard.png)", ""]
    return extra, md


def _set_images(args: argparse.Namespace, bins: dict[str, Path], name: str) -> Any:
    """The decoded images of an evaluated set, re-read for ``--quality norm``."""
    kw = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    if name in bins:
        from massface.data.verification import read_bin

        return read_bin(bins[name], **kw)[0]
    from massface.data.verification import read_lfw_pairs

    return read_lfw_pairs(args.lfw_pairs, args.lfw_root, ext=args.lfw_ext, **kw)[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``massface eval``; returns the process exit code."""
    args = build_parser().parse_args(None if argv is None else list(argv))
    if args.data_dir is None and args.ijb is None and args.lfw_pairs is None and args.tinyface is None:
        print("massface eval: give --data-dir (verification .bin sets), --lfw-pairs/--lfw-root, --ijb and/or "
              "--tinyface", file=sys.stderr)
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
        group_spec, quality_spec = _read_groups_quality(
            args, [*bins, *(["lfw_pairs"] if args.lfw_pairs is not None else [])])
        tinyface = None
        if args.tinyface is not None:  # listed and checked before any embedding
            from massface.evaluation.tinyface import read_tinyface

            tinyface = read_tinyface(args.tinyface)
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
    try:
        extra_json, extra_md = _run_groups_quality(model, args, bins, results, group_spec, quality_spec, out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"massface eval: {exc}", file=sys.stderr)
        return 1
    if tinyface is not None:  # --tinyface: its rank-k row joins results.json and report.md
        from massface.evaluation.tinyface import evaluate_tinyface, format_tinyface

        try:
            tf = evaluate_tinyface(model, tinyface, image_size=args.tinyface_size, flip=args.flip,
                                   variant=args.variant, batch_size=args.batch_size, device=args.device,
                                   progress=not args.quiet, max_pixels=args.max_pixels)
        except (FileNotFoundError, ValueError) as exc:
            print(f"massface eval: {exc}", file=sys.stderr)
            return 1
        print("TinyFace closed-set identification\n" + format_tinyface(tf))
        extra_json["tinyface"] = {"source": args.tinyface, **tf.summary()}
        extra_md += ["## TinyFace", "", format_tinyface(tf, markdown=True), "",
                     f"Closed-set CMC: every probe searched in Gallery_Match + Gallery_Distractor by cosine; images "
                     f"resized to {tf.image_size[0]}x{tf.image_size[1]}, flip {'on' if tf.flip else 'off'}; "
                     "labels from the file names, distractors never match (AdaFace's protocol).", ""]
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
    if extra_json:  # --groups / --quality: their tables join results.json and report.md
        payload = json.loads(written["results"].read_text())
        payload.update(extra_json)
        written["results"].write_text(json.dumps(payload, indent=2, default=str))
        with open(written["report"], "a", encoding="utf-8") as fh:
            fh.write("\n".join(extra_md) + "\n")
    print(f"wrote {written['report']} and {written['results']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
