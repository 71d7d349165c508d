"""The list files of identity-set cleaning: label pairs and sample indices, round trips and hostile lines."""

from __future__ import annotations

import pytest

from massface.data._errors import DataFormatError
from massface.data.label_lists import read_indices, read_label_pairs, write_indices, write_label_pairs


def test_label_pairs_files_round_trip_and_hostile_lines_are_named(tmp_path):
    path = tmp_path / "pairs.txt"
    write_label_pairs(path, [[0, 1], [7, 3]], header="from massface clean\nthreshold 0.3")
    assert read_label_pairs(path).tolist() == [[0, 1], [7, 3]]
    assert read_label_pairs(tmp_path / "pairs.txt").dtype.name == "int64"
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    assert read_label_pairs(tmp_path / "empty.txt").shape == (0, 2)
    cases = {"three.txt": ("0 1\n1 2 3\n", "line 2: expected two .* 3 field"),
             "negative.txt": ("-1 2\n", "line 1: expected two .* not non-negative integers"),
             "float.txt": ("1.0 2\n", "line 1"),
             "unicode_digit.txt": ("1 \u00b2\n", "line 1"),
             "huge.txt": ("1 99999999999\n", "line 1"),
             "binary.txt": (b"\xff\xfe 1 2\n", "line 1: is not UTF-8")}
    for name, (content, message) in cases.items():
        target = tmp_path / name
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(DataFormatError, match=rf"{name}: {message}"):
            read_label_pairs(target)
    with pytest.raises(DataFormatError, match="cannot be read"):
        read_label_pairs(tmp_path / "missing.txt")
    with pytest.raises(DataFormatError, match="not a regular file"):
        read_label_pairs(tmp_path)


@pytest.mark.parametrize(("content", "message"), [
    ("0\n5\n", "line 2: sample index 5 is out of range for 5 samples"),
    ("1 2\n", "line 1: expected one non-negative integer"),
    ("-1\n", "line 1"),
    ("# only a comment\n", "holds no sample index"),
    (b"\xff\n", "line 1: is not UTF-8"),
])
def test_hostile_index_files_are_named(tmp_path, content, message):
    path = tmp_path / "keep.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataFormatError, match=rf"keep.txt: {message}"):
        read_indices(path, 5)
    with pytest.raises(DataFormatError, match="is not a regular file"):
        read_indices(tmp_path, 5)


def test_indices_round_trip(tmp_path):
    path = tmp_path / "keep_indices.txt"
    write_indices(path, [4, 0, 2, 2], header="kept")
    assert read_indices(path, 5).tolist() == [0, 2, 4]
