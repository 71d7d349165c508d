"""evaluation.fairness: per-group accuracy, SER, the global FMR threshold, RFW / BFW / group-list readers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from massface.data import DataFormatError
from massface.evaluation.fairness import (
    CROSS_GROUP,
    evaluate_group_distances,
    evaluate_groups,
    format_group_table,
    pair_groups_from_images,
    read_bfw_pairs,
    read_pair_groups,
    read_rfw_pairs,
    threshold_at_fmr,
)
from massface.evaluation.verification import evaluate_distances, pair_distances


def _group(n_gen_err: int, imp_near: int) -> tuple[list[float], list[bool]]:
    """20 pairs alternating genuine / impostor: genuine at 0.5 except ``n_gen_err`` at 3.0 (beyond every impostor:
    always rejected), impostors at 2.5 except ``imp_near`` at 1.0 (rejected by the accuracy threshold, accepted by
    a loose global one)."""
    gen = [3.0] * n_gen_err + [0.5] * (10 - n_gen_err)
    imp = [1.0] * imp_near + [2.5] * (10 - imp_near)
    d, y = [], []
    for g, i in zip(gen, imp):
        d += [g, i]
        y += [True, False]
    return d, y


def _two_groups():
    da, ya = _group(1, 0)
    db, yb = _group(2, 2)
    d, y, g = [], [], []
    for k in range(20):  # interleaved: a group's pairs keep their relative order
        d += [da[k], db[k]]
        y += [ya[k], yb[k]]
        g += ["A", "B"]
    return np.array(d), np.array(y), g


def test_hand_computed_two_groups() -> None:
    d, y, g = _two_groups()
    r = evaluate_group_distances(d, y, g, far=0.1)
    assert r.groups == ("A", "B")
    # the 3.0 genuine pairs are the only errors: folds of 2 pairs, so acc = 1 - errors / 20
    assert r.accuracy["A"] == pytest.approx(0.95) and r.accuracy["B"] == pytest.approx(0.90)
    assert r.mean_accuracy == pytest.approx(0.925)
    assert r.std_accuracy == pytest.approx(0.05 / math.sqrt(2))
    assert r.ser == pytest.approx(2.0)
    # 20 impostors: two at 1.0 (group B), m = floor(0.1 · 20) = 2 -> τ = the third smallest = 2.5
    assert r.threshold == 2.5 and r.fmr_achieved == pytest.approx(0.1)
    assert r.tpr_at_threshold == pytest.approx({"A": 0.9, "B": 0.8})
    assert r.fpr_at_threshold == pytest.approx({"A": 0.0, "B": 0.2})
    assert r.num_pairs == {"A": 20, "B": 20} and r.num_genuine == {"A": 10, "B": 10} and r.num_excluded == 0
    # per group: exactly evaluate_distances on the group's pairs
    ref = evaluate_distances(d[0::2], y[0::2], far_targets=(0.1,))
    assert np.array_equal(r.per_group["A"].fold_accuracies, ref.fold_accuracies)
    # a tighter target: m = 1 -> τ = 1.0, the two impostors tied at τ are both rejected
    r2 = evaluate_group_distances(d, y, g, far=0.05)
    assert r2.threshold == 1.0 and r2.fmr_achieved == 0.0
    assert r2.fpr_at_threshold == {"A": 0.0, "B": 0.0}
    summary = r.summary()
    assert summary["groups"]["B"]["tpr_at_threshold"] == pytest.approx(0.8) and summary["ser"] == pytest.approx(2.0)
    text = format_group_table(r)
    assert "| A |" in text and "SER 2.000" in text


def test_ser_edge_cases_and_cross_group_pairs() -> None:
    d, y, g = _two_groups()
    d = np.where(d == 3.0, 0.5, d)  # no genuine error left in A or B
    r = evaluate_group_distances(d, y, g, far=0.1)
    assert r.ser == 1.0  # every group error-free: nothing skewed
    d2, y2, g2 = _two_groups()
    d2[[k for k in range(40) if g2[k] == "A" and d2[k] == 3.0]] = 0.5  # only A error-free
    assert math.isinf(evaluate_group_distances(d2, y2, g2, far=0.1).ser)
    assert evaluate_group_distances(d2, y2, g2, far=0.1).summary()["ser"] == "inf"
    # cross-group pairs: used for τ, not in any row
    d3 = np.r_[d2, [0.1, 0.1]]
    y3 = np.r_[y2, [False, False]]
    r3 = evaluate_group_distances(d3, y3, [*g2, None, None], far=0.1)
    assert r3.num_excluded == 2 and r3.groups == ("A", "B")
    assert r3.threshold == 1.0  # 22 impostors, two at 0.1 and two at 1.0: m = 2 -> τ = 1.0


def _plain(d, y, g, far):
    """Loops: the largest τ among impostor values and +inf with FMR <= far; per-group rates at τ."""
    imp = [d[i] for i in range(len(d)) if not y[i]]
    best = -math.inf
    for t in sorted(set(imp)) + [math.inf]:
        if sum(1 for v in imp if v < t) / len(imp) <= far + 1e-12:
            best = max(best, t)
    tpr, fpr = {}, {}
    for grp in dict.fromkeys(g):
        gi = [i for i in range(len(d)) if g[i] == grp and y[i]]
        ii = [i for i in range(len(d)) if g[i] == grp and not y[i]]
        tpr[grp] = sum(1 for i in gi if d[i] < best) / len(gi)
        fpr[grp] = sum(1 for i in ii if d[i] < best) / len(ii)
    return best, tpr, fpr


@pytest.mark.parametrize("seed", range(6))
def test_against_plain_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 90
    y = rng.random(n) < 0.5
    y[:6] = [True, False] * 3
    d = np.round(np.where(y, rng.uniform(0, 2.5, n), rng.uniform(1, 4, n)), 1)  # ties on purpose
    g = [["x", "y", "z"][k % 3] for k in range(n)]
    far = float(rng.choice([0.01, 0.05, 0.1, 0.3]))
    r = evaluate_group_distances(d, y, g, far=far, n_folds=5)
    tau, tpr, fpr = _plain(d, y, g, far)
    assert r.threshold == tau
    assert r.tpr_at_threshold == pytest.approx(tpr) and r.fpr_at_threshold == pytest.approx(fpr)
    errs = []
    for grp in ("x", "y", "z"):
        sel = [k for k in range(n) if g[k] == grp]
        ref = evaluate_distances(d[sel], y[sel], n_folds=5)
        assert r.accuracy[grp] == ref.accuracy and r.accuracy_std[grp] == ref.std
        errs.append(1 - ref.accuracy)
    accs = [1 - e for e in errs]
    mean = sum(accs) / 3
    assert r.mean_accuracy == pytest.approx(mean)
    assert r.std_accuracy == pytest.approx(math.sqrt(sum((a - mean) ** 2 for a in accs) / 2))
    assert r.ser == pytest.approx(max(errs) / min(errs) if min(errs) > 0 else (1.0 if max(errs) == 0 else math.inf))


def test_evaluate_groups_from_embeddings_and_image_groups() -> None:
    rng = np.random.default_rng(3)
    e1 = rng.normal(size=(60, 8))
    e2 = np.where(np.arange(60)[:, None] % 2 == 0, e1 + 0.3 * rng.normal(size=(60, 8)), rng.normal(size=(60, 8)))
    y = np.arange(60) % 2 == 0
    g = np.array(["u", "u", "v", "v"] * 15)
    r = evaluate_groups(e1, e2, y, g, far=0.1)
    ref = evaluate_group_distances(pair_distances(e1, e2), y, list(g), far=0.1)
    assert r.accuracy == ref.accuracy and r.threshold == ref.threshold
    assert pair_groups_from_images(["a", "a", "b", None], ["a", "b", "b", None]) == ["a", CROSS_GROUP, "b", None]
    with pytest.raises(ValueError, match="groups1 has 2"):
        pair_groups_from_images(["a", "b"], ["a"])


def test_threshold_rule() -> None:
    d = np.array([0.2, 1.0, 1.0, 2.0, 3.0])
    y = np.array([True, False, False, False, False])
    assert threshold_at_fmr(d, y, 0.25) == 1.0  # m = 1: neg[1] = 1.0; the tie at 1.0 keeps FMR at 0
    assert threshold_at_fmr(d, y, 0.5) == 2.0
    assert threshold_at_fmr(d, y, 1.0) == math.inf
    neg = np.arange(100) / 100.0  # 0.29 · 100 = 28.999999999999996 in floats: still 29 impostors accepted
    assert threshold_at_fmr(neg, np.zeros(100, bool), 0.29) == neg[29]
    for bad in (0.0, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="false-match rate"):
            threshold_at_fmr(d, y, bad)
    with pytest.raises(ValueError, match="impostor"):
        threshold_at_fmr(d[:1], y[:1], 0.1)


def test_hostile_inputs() -> None:
    d, y, g = _two_groups()
    with pytest.raises(ValueError, match="39 labels but there are 40"):
        evaluate_group_distances(d, y, g[:-1])
    with pytest.raises(ValueError, match="issame has 39"):
        evaluate_group_distances(d, y[:-1], g)
    g_bad = ["C" if (k < 6 and y[k]) else lab for k, lab in enumerate(g)]  # C: four genuine pairs only
    with pytest.raises(ValueError, match="group 'C' has 4 genuine and 0 impostor"):
        evaluate_group_distances(d, y, g_bad)
    g_small = ["C" if k < 4 else lab for k, lab in enumerate(g)]
    with pytest.raises(ValueError, match="group 'C' has 4 pairs, fewer than n_folds=10"):
        evaluate_group_distances(d, y, g_small)
    with pytest.raises(ValueError, match="at least two groups"):
        evaluate_group_distances(d, y, ["A"] * 40)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_group_distances(d, y, [float("nan")] + g[1:])
    with pytest.raises(ValueError, match="not hashable"):
        evaluate_group_distances(d, y, [["A"]] + g[1:])
    with pytest.raises(ValueError, match="squared L2"):
        evaluate_group_distances(np.r_[d[:-1], np.nan], y, g)
    with pytest.raises(ValueError, match="n_folds"):
        evaluate_group_distances(d, y, g, n_folds=1)


def test_plot_group_roc(tmp_path) -> None:
    from massface.evaluation.plots import plot_group_roc

    d, y, g = _two_groups()
    r = evaluate_group_distances(d, y, g, far=0.1)
    plot_group_roc(r, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0
    with pytest.raises(ValueError, match="at least one group"):
        plot_group_roc(object())


# --------------------------------------------------------------------------------------------------- readers


def _rfw_tree(root, races=("African", "Asian")):
    for race in races:
        (root / "txts" / race).mkdir(parents=True)
        lines = []
        for k in range(3):
            a, b = f"m.{race[:2]}{k}", f"m.{race[:2]}{k + 1}"
            for name in (a, b):
                (root / "data" / race / name).mkdir(parents=True, exist_ok=True)
                for n in (1, 2):
                    (root / "data" / race / name / f"{name}_{n:04d}.jpg").write_bytes(b"")
            lines += [f"{a}\t1\t2", f"{a}\t1\t{b}\t2"]
        (root / "txts" / race / f"{race}_pairs.txt").write_text("\n".join(lines) + "\n")


def test_read_rfw_pairs(tmp_path) -> None:
    _rfw_tree(tmp_path)
    p = read_rfw_pairs(tmp_path, races=("African", "Asian"))
    assert len(p) == 12 and p.groups == ("African",) * 6 + ("Asian",) * 6
    assert p.issame.tolist() == [True, False] * 6
    assert p.first[1].endswith("data/African/m.Af0/m.Af0_0001.jpg")
    assert p.second[1].endswith("data/African/m.Af1/m.Af1_0002.jpg")
    assert p.folds is None


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("m.Af0\t1", "expected 'name n1 n2'"),
        ("m.Af0\t1\t2\t3\t4", "expected 'name n1 n2'"),
        ("m.Af0\tone\t2", "image number"),
        ("m.Af0\t-1\t2", "image number"),
        ("..\t1\t2", "single path component"),
        ("m.Af0\t1\t7", "not found"),
    ],
)
def test_read_rfw_pairs_hostile_lines(tmp_path, line, match) -> None:
    _rfw_tree(tmp_path, races=("African",))
    f = tmp_path / "txts" / "African" / "African_pairs.txt"
    f.write_text(f.read_text() + line + "\n")
    with pytest.raises(DataFormatError, match=match) as err:
        read_rfw_pairs(tmp_path, races=("African",))
    assert "African_pairs.txt: line 7" in str(err.value)


def test_read_rfw_pairs_hostile_files(tmp_path) -> None:
    with pytest.raises(DataFormatError, match="RFW pair list not found"):
        read_rfw_pairs(tmp_path)
    _rfw_tree(tmp_path, races=("African",))
    (tmp_path / "txts" / "African" / "African_pairs.txt").write_text("\n\n")
    with pytest.raises(DataFormatError, match="empty pair list"):
        read_rfw_pairs(tmp_path, races=("African",))
    (tmp_path / "txts" / "African" / "African_pairs.txt").write_bytes(b"m.Af0\t1\t2\n\xff\xfe\n")
    with pytest.raises(DataFormatError, match="UTF-8"):
        read_rfw_pairs(tmp_path, races=("African",))
    with pytest.raises(ValueError, match="single path component"):
        read_rfw_pairs(tmp_path, races=("../x",))


_BFW = (
    "id1,label,p2,att2,fold,p1,att1,score\n"
    "0,1,asian_females/n1/b.jpg,asian_females,1,asian_females/n1/a.jpg,asian_females,0.8\n"
    "0,0,black_males/n9/b.jpg,black_males,1,asian_females/n1/a.jpg,asian_females,0.1\n"
    "3,0,white_males/n4/c.jpg,white_males,2,white_males/n3/a.jpg,white_males,0.2\n"
)


def test_read_bfw_pairs(tmp_path) -> None:
    f = tmp_path / "bfw.csv"
    f.write_text(_BFW)
    p = read_bfw_pairs(f)
    assert p.first == ("asian_females/n1/a.jpg", "asian_females/n1/a.jpg", "white_males/n3/a.jpg")
    assert p.issame.tolist() == [True, False, False]
    assert p.groups == ("asian_females", CROSS_GROUP, "white_males")
    assert p.folds.tolist() == [1, 1, 2]
    # without att columns the first path component is the group; with a root the paths are joined
    f.write_text("p1,p2,label\nasian_males/n1/a.jpg,asian_males/n2/b.jpg,0\n")
    p2 = read_bfw_pairs(f, root=tmp_path)
    assert p2.groups == ("asian_males",) and p2.first[0] == str(tmp_path / "asian_males/n1/a.jpg")
    assert p2.folds is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty file"),
        ("p1,p2\na,b\n", r"lacks column\(s\) \['label'\]"),
        ("p1,p2,label,p1\na,b,1,c\n", "appears twice"),
        ("p1,p2,label\na/x.jpg,b/y.jpg\n", "line 2: 2 fields, the header has 3"),
        ("p1,p2,label\na/x.jpg,b/y.jpg,2\n", "line 2: label must be 0 or 1"),
        ("p1,p2,label\n../x.jpg,b/y.jpg,1\n", "line 2: column p1: path climbs"),
        ("p1,p2,label\n/abs.jpg,b/y.jpg,1\n", "absolute path"),
        ("p1,p2,label,fold\na/x.jpg,b/y.jpg,1,one\n", "line 2: fold must be an integer"),
        ("p1,p2,label,att1,att2\na/x.jpg,b/y.jpg,1,,a\n", "empty group"),
        ("p1,p2,label\n", "no pairs"),
        ('p1,p2,label\n"a/x.jpg,b/y.jpg,1\n', "malformed CSV"),
    ],
)
def test_read_bfw_pairs_hostile(tmp_path, text, match) -> None:
    f = tmp_path / "bfw.csv"
    f.write_text(text)
    with pytest.raises(DataFormatError, match=match) as err:
        read_bfw_pairs(f)
    assert str(f) in str(err.value)


def test_read_bfw_missing_file(tmp_path) -> None:
    with pytest.raises(DataFormatError, match="not found"):
        read_bfw_pairs(tmp_path / "nope.csv")


def test_read_pair_groups(tmp_path) -> None:
    f = tmp_path / "g.txt"
    f.write_text("# race per pair\nAfrican\n-\n Asian \n")
    assert read_pair_groups(f) == ["African", None, "Asian"]
    assert read_pair_groups(f, n_pairs=3) == ["African", None, "Asian"]
    with pytest.raises(DataFormatError, match="3 group labels for 4 pairs"):
        read_pair_groups(f, n_pairs=4)
    f.write_text("a\n\nb\n")
    with pytest.raises(DataFormatError, match="line 2: blank line"):
        read_pair_groups(f)
    f.write_text("# nothing\n")
    with pytest.raises(DataFormatError, match="no group labels"):
        read_pair_groups(f)
    with pytest.raises(DataFormatError):
        read_pair_groups(tmp_path / "missing.txt")
