"""evaluation.cli: flags map to the library's names."""

from __future__ import annotations


def test_cli_folds_flag_maps_to_n_folds() -> None:
    from massface.evaluation.cli import build_parser

    args = build_parser().parse_args(["--model", "m.onnx", "--folds", "5"])
    assert args.n_folds == 5


def test_cli_ijb_1n_definition_flag_defaults_to_fpir_and_refuses_others(capsys) -> None:
    import pytest

    from massface.evaluation.cli import build_parser

    assert build_parser().parse_args(["--model", "m.onnx"]).ijb_1n == "fpir"
    assert build_parser().parse_args(["--model", "m.onnx", "--ijb-1n", "ijb_1n"]).ijb_1n == "ijb_1n"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model", "m.onnx", "--ijb-1n", "nist"])
    assert "invalid choice: 'nist'" in capsys.readouterr().err
