import json

import numpy as np
import pytest

from cdbench.data import (
    LEVELS,
    level_index,
    level_index_of_score,
    level_index_of_value,
    level_of_score,
    level_value_from_probs,
    level_value_to_score,
    score_to_level_value,
)


def test_scale_formula_and_inverse():
    s = np.linspace(0.0, 20.0, 201)
    x = score_to_level_value(s)
    np.testing.assert_allclose(x, np.log((s + 1.2943) / 1.6036) / 0.5391, rtol=1e-15)
    np.testing.assert_allclose(level_value_to_score(x), s, atol=1e-12)
    assert isinstance(score_to_level_value(3.0), float)
    assert np.isnan(score_to_level_value(-2.0))


def test_level_rule_bins_left_closed():
    for k in range(5):
        if k:
            assert level_index_of_score(level_value_to_score(k + 1e-9)) == k
            assert level_index_of_value(float(k)) == k  # x == k is level k (left-closed)
            assert level_index_of_score(level_value_to_score(k - 1e-9)) == k - 1
    assert level_of_score(4.585466157) == "moderate"
    assert level_index("Moderate.") == 2
    with pytest.raises(ValueError, match="unknown level"):
        level_index("huge")


def test_level_value_from_probs():
    p = np.eye(5)
    np.testing.assert_allclose(level_value_from_probs(p), [0, 1.25, 2.5, 3.75, 5.0])
    np.testing.assert_allclose(level_value_from_probs(np.full(5, 0.2)), 2.5)
    with pytest.raises(ValueError):
        level_value_from_probs(np.ones(4))


def test_rule_reproduces_released_aligned_files(shared_data):
    """The aligned/not-aligned files follow the rule except one pair at x = 3.00015 (data README)."""
    mismatches = []
    for name in ("test_aligned_data.json", "test_notaligned_data.json"):
        for item in json.loads((shared_data / "m-spcd/score_task" / name).read_text()):
            released = item["conversations"][1]["value"].rsplit(" ", 1)[-1].strip(".").lower()
            if LEVELS[level_index_of_score(item["gt_score"])] != released:
                mismatches.append(score_to_level_value(item["gt_score"]))
    assert len(mismatches) == 1
    assert mismatches[0] == pytest.approx(3.00015, abs=1e-5)
