"""What the recipe tests share: a miniature ``faces_webface_112x112`` and the overrides a small machine passes."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from massface.data.synthetic import SynthFaces


@pytest.fixture(scope="session")
def miniature_webface(tmp_path_factory) -> Callable[[int], Path]:
    """``faces_webface_112x112`` in miniature at a given side: 8 identities × 3 images, ``train.rec`` / ``.idx`` /
    ``property`` and three 10-fold verification sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``)."""
    made: dict[int, Path] = {}

    def make(image_size: int = 112) -> Path:
        if image_size not in made:
            root = tmp_path_factory.mktemp(f"data{image_size}") / "faces_webface_112x112"
            SynthFaces(8, 3, seed=0, difficulty=0.3, image_size=image_size).export(
                root, bin_name="lfw.bin", n_folds=10, pairs_per_fold=2)
            for other in ("cfp_fp.bin", "agedb_30.bin"):
                shutil.copy(root / "lfw.bin", root / other)
            made[image_size] = root
        return made[image_size]

    return make


@pytest.fixture(scope="session")
def sizes_paths_steps() -> Callable[[Path, Path, int], list[str]]:
    """The ``--set`` overrides a user with a small machine passes to a shipped config: sizes, paths, steps."""

    def overrides(data: Path, out: Path, steps: int) -> list[str]:
        return ["--set", f"data.path={data / 'train.rec'}", "--set", f"output_dir={out}",
                "--set", "data.p=4", "--set", "data.k=2", "--set", "data.workers=0",
                "--set", f"train.steps={steps}", "--set", f"train.checkpoint_every={steps}",
                "--set", f"eval.sets=[{data / 'lfw.bin'}]", "--set", f"eval.every={steps}"]

    return overrides
