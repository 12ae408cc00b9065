"""Metrics on a hand-worked example with zero labels, so has0 and non0 differ."""

import math

import numpy as np
import pytest

from msa.metrics import evaluate, label7, weighted_f1

PREDS = [2.4, -0.4, 0.2, -1.6, 0.0, 1.2]
LABELS = [3.0, -1.0, 0.0, -2.0, 0.4, 0.0]


def test_hand_worked_example():
    m = evaluate(PREDS, LABELS)
    assert set(m) == {"mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0"}
    # |errors| = .6 .6 .2 .4 .4 1.2
    assert m["mae"] == pytest.approx(3.4 / 6)
    # rounded in [-3,3]: p 2,-0,0,-2,0,1  y 3,-1,0,-2,0,0 -> 3 of 6
    assert m["acc7"] == pytest.approx(50.0)
    # clipped to [-2,2]: p 2,-0,0,-2,0,1  y 2,-1,0,-2,0,0 -> 4 of 6
    assert m["acc5"] == pytest.approx(400 / 6)
    # has0 (>= 0): p T F T F T T  y T F T F T T -> all right
    assert m["acc2_has0"] == pytest.approx(100.0)
    assert m["f1_has0"] == pytest.approx(100.0)
    # non0: drop y == 0 (2 samples); p>0: T F F F, y>0: T F F T -> 3 of 4
    assert m["acc2_non0"] == pytest.approx(75.0)
    # F1 pos = 2/3, F1 neg = 4/5, two of each -> 73.33
    assert m["f1_non0"] == pytest.approx(100 * (2 / 3 + 4 / 5) / 2)
    p, y = np.array(PREDS), np.array(LABELS)
    pc, yc = p - p.mean(), y - y.mean()
    assert m["corr"] == pytest.approx((pc * yc).sum() / math.sqrt((pc**2).sum() * (yc**2).sum()))


def test_weighted_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 200).astype(bool), rng.integers(0, 2, 200).astype(bool)
    assert weighted_f1(y, p) == pytest.approx(f1_score(y, p, average="weighted"))


def test_all_zero_labels_give_nan_non0_and_bad_input_is_refused():
    m = evaluate([0.1, -0.2], [0.0, 0.0])
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])
    with pytest.raises(ValueError, match="differ in length"):
        evaluate([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        evaluate([float("nan")], [1.0])


def test_label7_names():
    assert label7(-3.4) == "strongly negative"
    assert label7(0.4) == "neutral"
    assert label7(2.6) == "strongly positive"
    assert label7(1.2) == "weakly positive"
