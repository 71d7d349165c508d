"""``massface convert``: move face data between the field's formats.

    massface convert dataset SRC DST --to {rec,tfrecord,folder} [--from auto|folder|rec|tfrecord|json] ...
    massface convert pairs PAIRS IMAGE_ROOT OUT.bin [--layout lfw|folders] ...

``dataset`` reads any training source (identity folders, insightface ``.rec``, TFace ``.index`` + shards, or ffem's
JSON list, which is cropped to its boxes and resized — the "aligned folder" path) and writes ``train.rec`` /
``.idx`` / ``property``, TFRecord shards + index, or identity folders. Encoded images are copied byte for byte
(after a decode check unless ``--no-verify``); only JSON crops are re-encoded. ``pairs`` packs LFW ``pairs.txt``
(View 2) or MassFace pair folders into an insightface ``.bin`` holding the original file bytes.

Inputs are never touched: an output that is, contains or lies inside one of the inputs (folders compared by
resolved path, files by device and inode, so symlinks and hard links count) is refused before anything is
written. ``--max-pixels`` bounds the pixels of one image (checked from its header before decoding).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from massface._deprecation import warn_renamed
from massface.data._errors import DataFormatError, SkipReport, raise_or_record
from massface.data._guard import DEFAULT_MAX_PIXELS, check_max_pixels, overlap_problem
from massface.data.datasets import open_dataset as _open
from massface.data.encoded import EncodedImageDataset, decode_image

__all__ = ["main", "open_dataset"]


def open_dataset(src: str, kind: str = "auto", *, image_root: str | None = None,
                 size: tuple[int, int] | None = None, on_error: str = "raise",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> EncodedImageDataset:
    """Deprecated (issue 13): use :func:`massface.data.open_dataset` (``format=`` instead of ``kind``); this keeps
    the old default of reading a ``.rec`` without its ``property`` file for one release."""
    warn_renamed("massface.data.convert.open_dataset",
                 "massface.data.open_dataset(path, format, ..., require_property=False)")
    return _open(src, kind, image_root=image_root, size=size, on_error=on_error,  # type: ignore[arg-type]
                 max_pixels=max_pixels, require_property=False)


def _samples(ds: EncodedImageDataset, reencode: bool, verify: bool, skipped: SkipReport,
             on_error: str) -> Iterator[tuple[object, int]]:
    """Yield ``(encoded bytes or RGB array, label)``; bad samples raise or are skipped and counted.

    ``verify`` decodes each copied image with the reader's own checks (``max_pixels``, a declared size)."""
    labels = ds.labels
    for i in range(len(ds)):
        try:
            if reencode:
                item: object = ds.load_image(i)
            else:
                item = ds.read_encoded(i)
                if verify:
                    ds.decode_encoded(i, item)  # type: ignore[arg-type]
        except DataFormatError as err:
            raise_or_record(err, on_error, skipped)  # type: ignore[arg-type]
            continue
        yield item, int(labels[i])


def refuse_overlap(output: str, files: list[str], dirs: list[str]) -> None:
    """Raise ValueError when writing ``output`` could touch one of the inputs (see
    :func:`massface.data._guard.overlap_problem`); called before anything is written."""
    problem = overlap_problem(output, files, dirs)
    if problem is not None:
        raise ValueError(f"refused: {problem}; a conversion never writes over its inputs (nothing was written) — "
                         "choose an output outside the inputs")


def _cmd_dataset(args: argparse.Namespace) -> int:
    size = tuple(args.size) if args.size else None
    ds = _open(args.src, args.source_format, image_root=args.image_root, size=size,  # type: ignore[arg-type]
               on_error=args.on_error, max_pixels=args.max_pixels, require_property=False)
    refuse_overlap(args.dst, *ds.input_paths())
    reencode = args.source_format == "json" or args.src.lower().endswith(".json")
    skipped = SkipReport()
    skipped.records.extend(ds.skipped.records)
    samples = _samples(ds, reencode, not args.no_verify, skipped, args.on_error)
    common = dict(quality=args.quality, progress=not args.quiet, total=len(ds))
    if args.to == "rec":
        from massface.data.recordio import write_records
        res = write_records(args.dst, samples, prefix=args.name, **common)  # type: ignore[arg-type]
        summary = f"{res.num_images} images, {res.num_classes} identities -> {res.rec_path}"
    elif args.to == "tfrecord":
        from massface.data.tfrecord import write_tfrecords
        index = write_tfrecords(args.dst, samples, name=args.name, shard_size=args.shard_size,
                                **common)  # type: ignore[arg-type]
        with open(index, encoding="utf-8") as f:
            summary = f"{sum(1 for _ in f)} images -> {index}"
    else:
        from massface.data.folder import write_folder
        n = write_folder(args.dst, samples, num_classes=ds.num_classes, **common)  # type: ignore[arg-type]
        summary = f"{n} images -> {args.dst}"
    print(f"massface convert: {summary}; skipped {len(skipped)} bad record(s)")
    for rec in skipped.records[:20]:
        print(f"  skipped {rec}", file=sys.stderr)
    return 0


def _cmd_pairs(args: argparse.Namespace) -> int:
    from massface.data.verification import read_lfw_pairs, read_pair_folders, write_bin
    refuse_overlap(args.out, [args.pairs], [args.image_root])
    if args.layout == "lfw":
        buffers, issame = read_lfw_pairs(args.pairs, args.image_root, ext=args.ext, decode=False,
                                         on_error=args.on_error, max_pixels=args.max_pixels)
    else:
        buffers, issame = read_pair_folders(args.pairs, args.image_root, decode=False, on_error=args.on_error,
                                            max_pixels=args.max_pixels)
    if not args.no_verify:
        for i, buf in enumerate(buffers):
            decode_image(buf, args.pairs, f"image {i} (pair {i // 2})", max_pixels=args.max_pixels)
    write_bin(args.out, buffers, issame)
    print(f"massface convert: {len(issame)} pairs ({int(issame.sum())} same) -> {args.out}")
    return 0


def _positive_int(text: str) -> int:
    try:
        return check_max_pixels(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None


def _max_pixels_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="largest image (width × height) read, checked from its header before decoding "
                             f"(default {DEFAULT_MAX_PIXELS:,}); larger ones are errors (or skipped with "
                             "--on-error skip)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="massface convert", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dataset", help="training data: folder | rec | tfrecord | json -> rec | tfrecord | folder")
    d.add_argument("src", help="identity folder, train.rec, TFace .index or ffem JSON list")
    d.add_argument("dst", help="output directory")
    d.add_argument("--to", required=True, choices=("rec", "tfrecord", "folder"))
    d.add_argument("--from", dest="source_format", default="auto",
                   choices=("auto", "folder", "rec", "tfrecord", "json"))
    d.add_argument("--image-root", help="image root of a JSON list / data root of a TFace index")
    d.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="resize JSON crops to H W (e.g. 112 112)")
    d.add_argument("--name", default="train", help="output prefix (train.rec / train.index, default: train)")
    d.add_argument("--shard-size", type=int, default=500_000, help="records per TFRecord shard")
    d.add_argument("--quality", type=int, default=95, help="JPEG quality when images must be encoded")
    d.add_argument("--no-verify", action="store_true", help="copy encoded images without a decode check")
    d.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    _max_pixels_option(d)
    d.add_argument("--quiet", action="store_true", help="no progress line")
    d.set_defaults(func=_cmd_dataset)
    q = sub.add_parser("pairs", help="LFW pairs.txt or MassFace pair folders -> insightface .bin")
    q.add_argument("pairs", help="pairs.txt (LFW View 2) or a 'pair_id same' list (--layout folders)")
    q.add_argument("image_root")
    q.add_argument("out", help="output .bin")
    q.add_argument("--layout", choices=("lfw", "folders"), default="lfw")
    q.add_argument("--ext", default="jpg", help="LFW image suffix (default jpg)")
    q.add_argument("--no-verify", action="store_true", help="do not decode-check the images")
    q.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    _max_pixels_option(q)
    q.set_defaults(func=_cmd_pairs)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``massface convert``; returns the exit status (2 on bad input, with the reason)."""
    args = _parser().parse_args(argv)
    if getattr(args, "size", None) and min(args.size) <= 0:
        print("massface convert: --size H W must be positive", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (DataFormatError, ValueError, OSError) as err:  # OSError: e.g. an output path that is a file
        print(f"massface convert: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
