"""evaluation.cli: flags map to the library's names."""

from __future__ import annotations


def test_cli_folds_flag_maps_to_n_folds() -> None:
    from massface.evaluation.cli import build_parser

    args = build_parser().parse_args(["--model", "m.onnx", "--folds", "5"])
    assert args.n_folds == 5
