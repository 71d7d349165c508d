"""massface: a PyTorch metric-learning library for face recognition, built around triplet mining."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_version() -> str:
    for line in (HERE / "massface" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("massface/__init__.py defines no __version__")


setup(
    name="massface",
    version=read_version(),
    description="Triplet-mining metric learning for face recognition: P×K sampler, miners, losses, "
    "trainer, backbones and evaluation protocols",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["massface", "massface.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "numpy>=1.23",
        "scipy>=1.10",
        "pytorch-metric-learning>=2.3",
        "faiss-cpu>=1.7.4",
        "albumentations>=1.4",
        "opencv-python-headless>=4.8",
        "matplotlib>=3.7",
        "pyyaml>=6.0",
    ],
    extras_require={
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        "test": ["pytest>=7.4", "onnx>=1.15", "onnxruntime>=1.17"],
    },
    entry_points={"console_scripts": ["massface=massface.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Operating System :: OS Independent",
    ],
)
