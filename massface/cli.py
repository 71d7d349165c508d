"""The ``massface`` command: ``massface <subcommand> [args]``.

Each subcommand lives in the module that owns its work and is imported only when it is run, so
``massface --help`` is instant and never imports a heavy dependency.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# subcommand -> (module, one-line description); the module exposes ``main(argv) -> int``
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("massface.training.cli", "train a model from a YAML config (one process, or under torchrun for DDP)"),
    "demo": ("massface.training.demo", "the main job: SynthFaces -> train -> evaluate -> report, on CPU"),
    "eval": ("massface.evaluation.cli", "evaluate a checkpoint or ONNX model on verification sets"),
    "convert": ("massface.data.convert", "convert between dataset formats (folder, rec, tfrecord, .bin)"),
    "export-onnx": ("massface.backbones.onnx", "export a backbone checkpoint to ONNX"),
    "compare": ("massface.training.compare", "a grid of training runs over seeds, with intervals and paired tests"),
    "clean": ("massface.cleaning", "list suspected duplicate identities and mislabelled images of a training set"),
}


def _available() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (module, text) in SUBCOMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = (module, text)
    return found


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _available()
    parser = argparse.ArgumentParser(
        prog="massface",
        description="massface: triplet-mining metric learning for face recognition",
        epilog="subcommands:\n" + "\n".join(f"  {n:<12} {t}" for n, (_, t) in commands.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=sorted(commands), help="what to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the subcommand (see massface CMD -h)")
    if not argv:
        parser.print_help()
        return 2
    ns = parser.parse_args(argv[:1])
    module = importlib.import_module(commands[ns.command][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
