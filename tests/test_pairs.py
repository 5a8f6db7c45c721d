import pytest

from cdbench.data import is_aligned, pair_id, parse_spcd_name, scene_fold, scene_of


def test_pair_id_and_names():
    assert pair_id("images/I0249_01_01.png", "I0249_02_01.png") == "I0249_01_01+I0249_02_01"
    assert parse_spcd_name("I0249_03_02.png") == ("I0249", 3, 2)
    assert scene_of("x/I0006_01_03.png") == "I0006"
    with pytest.raises(ValueError, match="not an SPCD image name"):
        parse_spcd_name("photo.png")


def test_alignment_rule():
    assert not is_aligned("I0006_01_03.png", "I0006_01_04.png")
    assert is_aligned("I0006_01_03.png", "I0006_02_01.png")
    assert is_aligned("I0006_05_01.png", "I0006_02_01.png")


def test_scene_fold_deterministic_and_spread():
    folds = [scene_fold(f"I{i:04d}") for i in range(1000)]
    assert folds == [scene_fold(f"I{i:04d}") for i in range(1000)]
    counts = [folds.count(k) for k in range(5)]
    assert min(counts) > 150  # roughly uniform
    assert scene_fold("I0001", seed=1) in range(5)
