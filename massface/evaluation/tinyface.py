"""TinyFace closed-set identification (Cheng, Zhu, Gong, "Low-Resolution Face Recognition", ACCV 2018).

TinyFace's test split holds three folders of native low-resolution faces (about 20×16 pixels):

===========================  ==========================================================================
``Probe/``                   the searches: ``<identity>_<anything>.<ext>``
``Gallery_Match/``           the enrolled images of the same identities, named the same way
``Gallery_Distractor/``      faces of other people (any name, sub-folders allowed); never a match
===========================  ==========================================================================

The protocol (as AdaFace's ``validation_lq/tinyface_helper.py`` evaluates it): the identity of a probe or a
gallery-match image is the integer before the first ``_`` of its file name; distractors get the label
:data:`DISTRACTOR_LABEL` (``-100``) and so never equal a probe's identity; the gallery is Gallery_Match
followed by Gallery_Distractor; every image is embedded alone (flip test: the raw outputs for the image and
its mirror summed, then L2 — AdaFace's ``pre_norm_vector_add``, massface's ``variant="insightface"``); the
score is the cosine of two embeddings; rank-k is the share of probes whose identity occurs among the k
highest-scoring gallery *images* (ranks 1, 5 and 20). The ``.mat`` files of the release
(``probe_img_ID_pairs.mat``, ``gallery_match_img_ID_pairs.mat``) are not needed: the reference loads them but
takes every label from the file names, and so does :func:`read_tinyface`.

Images: decoded RGB (a massface-loaded AdaFace network has its BGR convention folded into its first
convolution), then resized to the model's input ``image_size`` — bilinear up, area down, the rule of
``massface.data.verification.read_bin`` — with no alignment. AdaFace evaluates instead a copy that it aligned
with MTCNN and resized to 112×112 (``aligned_pad_0.1_pad_high/``, available from its authors on request): that
copy has the same folder and file names, so it is read by pointing ``root`` at it.

Rank computation is IJB's (:mod:`massface.evaluation.ijb.identification`): per probe,
``rank = 1 + #{gallery images of other identities scoring >= its best mate}``, in probe blocks of bounded memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from massface.data._errors import DataFormatError
from massface.data._guard import MAX_LABEL, parse_int
from massface.evaluation._arrays import as_numpy, as_vector
from massface.evaluation.embedding import DEFAULT_BATCH_SIZE, Variant

__all__ = [
    "DISTRACTOR_LABEL",
    "TINYFACE_FOLDERS",
    "TINYFACE_RANKS",
    "TinyFaceSet",
    "TinyFaceEvaluation",
    "read_tinyface",
    "tinyface_cmc",
    "evaluate_tinyface",
    "format_tinyface",
]

#: The gallery label of a distractor image (AdaFace's ``-100``): negative, so no parsed identity equals it.
DISTRACTOR_LABEL = -100
#: The three folders of TinyFace's ``Testing_Set``.
TINYFACE_FOLDERS: tuple[str, str, str] = ("Probe", "Gallery_Match", "Gallery_Distractor")
#: The ranks AdaFace reports (its table prints rank-1 and rank-5).
TINYFACE_RANKS: tuple[int, ...] = (1, 5, 20)
_IMAGE_EXTS = frozenset((".jpg", ".jpeg", ".png", ".bmp", ".webp"))
_BLOCK_ELEMENTS = 1 << 24  # probes x gallery scores held at once (~250 MB with the temporaries)
_LOAD_CHUNK = 2048  # images decoded at once


@dataclass(frozen=True)
class TinyFaceSet:
    """A TinyFace test split: probe and gallery image paths with their identity labels.

    ``gallery_paths`` are Gallery_Match (sorted) then Gallery_Distractor (sorted); ``gallery_labels`` holds
    :data:`DISTRACTOR_LABEL` for the last ``num_distractors`` of them. ``ignored`` lists the files that are not
    images (by extension) and were left out.
    """

    root: Path
    probe_paths: tuple[str, ...] = field(repr=False)
    probe_labels: np.ndarray = field(repr=False)
    gallery_paths: tuple[str, ...] = field(repr=False)
    gallery_labels: np.ndarray = field(repr=False)
    num_match: int
    ignored: tuple[str, ...] = field(default=(), repr=False)

    @property
    def num_probes(self) -> int:
        return len(self.probe_paths)

    @property
    def num_gallery(self) -> int:
        return len(self.gallery_paths)

    @property
    def num_distractors(self) -> int:
        return len(self.gallery_paths) - self.num_match

    @property
    def num_identities(self) -> int:
        """Distinct probe identities."""
        return int(np.unique(self.probe_labels).size)

    @property
    def image_paths(self) -> tuple[str, ...]:
        """Probes then gallery: the order :func:`evaluate_tinyface` embeds them in."""
        return self.probe_paths + self.gallery_paths

    def summary(self) -> dict[str, Any]:
        return {"root": str(self.root), "probes": self.num_probes, "gallery": self.num_gallery,
                "gallery_match": self.num_match, "distractors": self.num_distractors,
                "identities": self.num_identities, "ignored_files": len(self.ignored)}


@dataclass(frozen=True)
class TinyFaceEvaluation:
    """Closed-set CMC of one model on TinyFace: ``cmc[k]`` = share of probes matched within the top ``k``."""

    cmc: dict[int, float]
    num_probes: int
    num_gallery: int
    num_distractors: int
    num_identities: int
    image_size: tuple[int, int]
    flip: bool
    probe_ranks: np.ndarray = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable: ``rank_k`` keys (fractions in [0, 1]) and the counts."""
        return {**{f"rank_{k}": v for k, v in self.cmc.items()}, "probes": self.num_probes,
                "gallery": self.num_gallery, "distractors": self.num_distractors,
                "identities": self.num_identities, "image_size": list(self.image_size), "flip": self.flip}


# ----------------------------------------------------------------------------------------------- reader
def _testing_set(root: Path) -> Path:
    """``root`` itself, or ``root/Testing_Set``, or ``root/tinyface/Testing_Set`` — the first holding Probe/."""
    for cand in (root, root / "Testing_Set", root / "tinyface" / "Testing_Set"):
        if (cand / TINYFACE_FOLDERS[0]).is_dir():
            return cand
    return root


def _list_images(folder: Path, ignored: list[str]) -> list[str]:
    """Sorted image files under ``folder`` (recursive, symlinked folders not followed; hidden files skipped)."""
    found: list[str] = []

    def fail(err: OSError) -> None:
        raise DataFormatError(err.filename or folder, f"cannot list folder ({err.strerror})")

    for dirpath, dirnames, filenames in os.walk(folder, onerror=fail):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            if os.path.splitext(name)[1].lower() in _IMAGE_EXTS:
                found.append(path)
            else:
                ignored.append(path)
    return sorted(found)


def _identity(path: str) -> int:
    """The identity of ``<identity>_<rest>.<ext>``: the decimal integer before the first underscore."""
    stem = os.path.splitext(os.path.basename(path))[0]
    head, sep, rest = stem.partition("_")
    if not sep or not rest or not head.isascii() or not head.isdigit():
        raise DataFormatError(path, "file name must be <identity>_<index>.<ext> with a decimal identity "
                                    "(TinyFace's Probe / Gallery_Match naming)")
    return parse_int(head, path, None, "identity", 0, MAX_LABEL)


def read_tinyface(root: str | os.PathLike[str], *, distractors: bool = True) -> TinyFaceSet:
    """List a TinyFace test split: ``root`` holding ``Probe/``, ``Gallery_Match/``, ``Gallery_Distractor/``
    (or ``root/Testing_Set/`` or ``root/tinyface/Testing_Set/`` holding them, the release's own layout).

    Labels come from the file names (the integer before the first ``_``); distractors are labelled :data:`DISTRACTOR_LABEL`.
    ``distractors=False`` leaves Gallery_Distractor out (a quick, easier gallery; not the protocol).

    Raises FileNotFoundError naming the missing folder, and ``DataFormatError`` (a ValueError) naming the file or
    folder when a Probe / Gallery_Match name does not parse, a folder holds no image, or a probe's identity has
    no image in Gallery_Match. Nothing is decoded here. Time O(number of files).
    """
    base = _testing_set(Path(root))
    wanted = TINYFACE_FOLDERS if distractors else TINYFACE_FOLDERS[:2]
    for name in wanted:
        if not (base / name).is_dir():
            raise FileNotFoundError(f"TinyFace folder not found: {base / name} (expected {', '.join(wanted)} "
                                    f"under {base})")
    ignored: list[str] = []
    lists = {name: _list_images(base / name, ignored) for name in wanted}
    for name, paths in lists.items():
        if not paths:
            hint = " (pass distractors=False to evaluate without it)" if name == TINYFACE_FOLDERS[2] else ""
            raise DataFormatError(base / name, f"folder holds no image (.jpg/.jpeg/.png/.bmp/.webp){hint}")
    probes = lists["Probe"]
    matches = lists["Gallery_Match"]
    p_lab = np.array([_identity(p) for p in probes], dtype=np.int64)
    m_lab = np.array([_identity(p) for p in matches], dtype=np.int64)
    enrolled = np.isin(p_lab, m_lab)
    if not enrolled.all():
        bad = np.flatnonzero(~enrolled)
        raise DataFormatError(probes[bad[0]], f"probe identity {p_lab[bad[0]]} has no image in "
                                              f"{base / 'Gallery_Match'} ({bad.size} of {len(probes)} probes "
                                              "are not enrolled; closed-set identification needs every one)")
    dis = lists.get("Gallery_Distractor", [])
    g_lab = np.concatenate([m_lab, np.full(len(dis), DISTRACTOR_LABEL, dtype=np.int64)])
    return TinyFaceSet(root=base, probe_paths=tuple(probes), probe_labels=p_lab,
                       gallery_paths=tuple(matches) + tuple(dis), gallery_labels=g_lab, num_match=len(matches),
                       ignored=tuple(ignored))


# ----------------------------------------------------------------------------------------------- CMC
def _unit_rows(x: Any, name: str) -> np.ndarray:
    a = as_numpy(x, name)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {a.shape}")
    a = np.asarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has NaN/inf entries (rows {np.flatnonzero(~np.isfinite(a).all(1))[:5].tolist()})")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{name} has all-zero rows (rows {np.flatnonzero(norms[:, 0] == 0)[:5].tolist()}); "
                         "cosine similarity is undefined for them")
    return a / norms


def _int_labels(x: Any, name: str, n: int) -> np.ndarray:
    a = as_vector(x, name, n)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got dtype {a.dtype}")
    return a.astype(np.int64)


def _probe_ranks(probe_emb: Any, probe_labels: Any, gallery_emb: Any, gallery_labels: Any, *,
                 distractor_label: int, chunk: int | None) -> np.ndarray:
    """Per probe, the rank (1 = first) of its best-scoring mate in the gallery; see :func:`tinyface_cmc`."""
    from massface.evaluation.ijb.identification import search_gallery

    p = _unit_rows(probe_emb, "probe_emb")
    g = _unit_rows(gallery_emb, "gallery_emb")
    if p.shape[1] != g.shape[1]:
        raise ValueError(f"probe_emb has dimension {p.shape[1]} but gallery_emb {g.shape[1]}")
    p_lab = _int_labels(probe_labels, "probe_labels", p.shape[0])
    g_lab = _int_labels(gallery_labels, "gallery_labels", g.shape[0])
    if (p_lab == distractor_label).any():
        i = int(np.flatnonzero(p_lab == distractor_label)[0])
        raise ValueError(f"probe_labels[{i}] is the distractor label {distractor_label}; a probe must have an identity")
    is_d = g_lab == distractor_label
    ids = np.unique(g_lab[~is_d])
    if ids.size == 0:
        raise ValueError(f"every gallery row is a distractor (label {distractor_label}); no probe can be matched")
    pos = np.searchsorted(ids, p_lab).clip(max=ids.size - 1)
    missing = ids[pos] != p_lab
    if missing.any():
        bad = np.flatnonzero(missing)
        raise ValueError(f"{bad.size} of {p_lab.size} probes have no mate in the gallery (first: probe {bad[0]}, "
                         f"identity {p_lab[bad[0]]}); closed-set identification needs every probe enrolled")
    g_code = np.full(g_lab.shape, -1, dtype=np.int64)  # distractors: -1, never a probe's code
    g_code[~is_d] = np.searchsorted(ids, g_lab[~is_d])
    if chunk is None:
        chunk = max(1, _BLOCK_ELEMENTS // g.shape[0])
    elif isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive int (probes per block), got {chunk!r}")
    _, rank, _, _ = search_gallery(p, pos.astype(np.int64), g, g_code, int(chunk))
    return rank


def _check_ranks(ranks: Sequence[int]) -> tuple[int, ...]:
    out = tuple(ranks)
    if not out or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in out):
        raise ValueError(f"ranks must be positive ints, got {ranks!r}")
    return tuple(int(k) for k in out)


def tinyface_cmc(
    probe_emb: Any,
    probe_labels: Any,
    gallery_emb: Any,
    gallery_labels: Any,
    ranks: Sequence[int] = TINYFACE_RANKS,
    *,
    distractor_label: int = DISTRACTOR_LABEL,
    chunk: int | None = None,
) -> dict[int, float]:
    """Closed-set CMC: ``{k: #{probes with rank <= k} / #probes}``.

    Embeddings are L2-normalised (float32) and scored by cosine ``s = p̂ · ĝ``. A probe's *mates* are the gallery
    rows with its label; rows labelled ``distractor_label`` are nobody's mate. Its rank is
    ``1 + #{non-mate rows j : s_j >= max_mate s}`` (ties count against the probe), i.e. the position of its first
    mate in the gallery sorted by descending score — AdaFace's ``DIR_FAR`` at FAR 1 (closed set), whose
    ``argsort`` breaks exact ties in an arbitrary order instead. Every probe must have a mate (ValueError
    otherwise), so the denominator is all probes.

    Args:
        probe_emb, gallery_emb: ``(P, D)`` and ``(G, D)`` arrays or tensors.
        probe_labels, gallery_labels: integer identities, ``(P,)`` and ``(G,)``.
        ranks: the ``k`` to report (``k > G`` gives 1.0).
        chunk: probes scored per block (default: as many as keep ``chunk · G <= 2**24`` scores, ~250 MB).

    Complexity: ``O(P · G · D)`` time, ``O(chunk · G)`` memory beyond the embeddings.
    """
    ks = _check_ranks(ranks)
    rank = _probe_ranks(probe_emb, probe_labels, gallery_emb, gallery_labels, distractor_label=distractor_label,
                        chunk=chunk)
    return {k: float(np.mean(rank <= k)) for k in ks}


# ----------------------------------------------------------------------------------------------- evaluation
def _load_images(paths: Sequence[str], hw: tuple[int, int], max_pixels: int, root_real: str) -> np.ndarray:
    """Decode ``paths`` to one RGB uint8 ``(n, H, W, 3)`` array, each resized to ``hw`` (bilinear up, area down).

    Every file must be a regular file inside ``root_real`` of at most ``max_file_bytes(max_pixels)`` bytes whose
    header announces at most ``max_pixels`` pixels; DataFormatError naming the file otherwise.
    """
    import cv2

    from massface.data._guard import max_file_bytes, read_regular_file
    from massface.data.encoded import decode_image

    h, w = hw
    out = np.empty((len(paths), h, w, 3), dtype=np.uint8)
    limit = max_file_bytes(max_pixels)
    for i, path in enumerate(paths):
        img = decode_image(read_regular_file(path, max_bytes=limit, root=root_real), path, max_pixels=max_pixels)
        if img.shape[:2] != (h, w):
            interp = cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_LINEAR
            img = cv2.resize(img, (w, h), interpolation=interp)
        out[i] = img
    return out


def evaluate_tinyface(
    model: Callable[[Any], Any],
    root: str | os.PathLike[str] | TinyFaceSet,
    *,
    image_size: int | tuple[int, int] = 112,
    flip: bool | None = None,
    variant: Variant = "insightface",
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Any = None,
    progress: bool = False,
    ranks: Sequence[int] = TINYFACE_RANKS,
    max_pixels: int | None = None,
    distractors: bool = True,
) -> TinyFaceEvaluation:
    """Rank-1/5/20 of ``model`` on TinyFace: :func:`read_tinyface`, embed every image, :func:`tinyface_cmc`.

    Each image is decoded (RGB), resized to ``image_size`` (``(H, W)`` or an int for a square; TinyFace's faces
    are ~20×16, so this is an upscaling) and embedded by
    :func:`~massface.evaluation.embedding.embed_images` (``flip=None``: on for ``variant="insightface"``, AdaFace's
    setting), ``_LOAD_CHUNK`` images at a time so that memory stays bounded for the ~160K images.
    ``max_pixels``: images whose header announces more pixels are refused (default
    ``massface.data.DEFAULT_MAX_PIXELS``). A bad image raises ``DataFormatError`` naming its file.

    Time: ``N (1 + flip)`` forward passes plus ``O(P · G · D)`` scoring; memory ``O(N · D)`` for the embeddings.
    """
    from massface._progress import progress_bar
    from massface.data._guard import DEFAULT_MAX_PIXELS, check_max_pixels, image_hw, real_root
    from massface.evaluation.embedding import embed_images

    ks = _check_ranks(ranks)
    hw = image_hw(image_size)
    pixels = check_max_pixels(DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
    data = root if isinstance(root, TinyFaceSet) else read_tinyface(root, distractors=distractors)
    paths = data.image_paths
    root_real = real_root(data.root)
    use_flip = (variant == "insightface") if flip is None else bool(flip)
    emb: np.ndarray | None = None
    with progress_bar(total=len(paths), desc="tinyface", unit="img", enabled=bool(progress)) as bar:
        for s in range(0, len(paths), _LOAD_CHUNK):
            imgs = _load_images(paths[s : s + _LOAD_CHUNK], hw, pixels, root_real)
            e = embed_images(model, imgs, flip=use_flip, batch_size=batch_size, variant=variant, device=device)
            if emb is None:
                emb = np.empty((len(paths), e.shape[1]), dtype=np.float32)
            emb[s : s + e.shape[0]] = e
            bar.update(e.shape[0])
    assert emb is not None  # read_tinyface refuses empty folders
    n_p = data.num_probes
    rank = _probe_ranks(emb[:n_p], data.probe_labels, emb[n_p:], data.gallery_labels,
                        distractor_label=DISTRACTOR_LABEL, chunk=None)
    return TinyFaceEvaluation(cmc={k: float(np.mean(rank <= k)) for k in ks}, num_probes=n_p,
                              num_gallery=data.num_gallery, num_distractors=data.num_distractors,
                              num_identities=data.num_identities, image_size=hw, flip=use_flip, probe_ranks=rank)


def format_tinyface(result: TinyFaceEvaluation, markdown: bool = False) -> str:
    """One table row: rank-k (%) and the probe / gallery / distractor counts."""
    head = [*(f"rank-{k} %" for k in result.cmc), "probes", "gallery", "distractors"]
    row = [*(f"{100 * v:.2f}" for v in result.cmc.values()), str(result.num_probes), str(result.num_gallery),
           str(result.num_distractors)]
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
                          "| " + " | ".join(row) + " |"])
    widths = [max(len(a), len(b)) for a, b in zip(head, row)]
    return "\n".join(["  ".join(f"{a:>{w}}" for a, w in zip(head, widths)),
                      "  ".join(f"{b:>{w}}" for b, w in zip(row, widths))])
