"""Bad input to the builders: one-line errors naming file and row; nothing half-built is left."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cdbench.builders import build_mspcd, build_spcd
from cdbench.builders.folder import check_image_bytes
from cdbench.data.dataset import dataset_info
from cdbench.data.synthetic import make_synthetic_mspcd, make_synthetic_spcd
from cdbench.errors import DataError


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    base = tmp_path_factory.mktemp("pristine")
    spcd = make_synthetic_spcd(base / "SPCD", n_scenes=2)
    ann = make_synthetic_mspcd(base / "M-SPCD", spcd, n_describe=2)
    return spcd, ann


@pytest.fixture
def spcd(pristine, tmp_path):
    return Path(shutil.copytree(pristine[0], tmp_path / "SPCD"))


@pytest.fixture
def ann(pristine, tmp_path):
    return Path(shutil.copytree(pristine[1], tmp_path / "M-SPCD"))


def _edit_csv(path: Path, row: int, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[row] = new
    path.write_text("\n".join(lines) + "\n")


def _no_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def _build(spcd, tmp_path, **kw):
    return build_spcd(spcd, tmp_path / "out", progress=False, **kw)


def test_missing_image_stops_or_is_dropped(spcd, tmp_path):
    (spcd / "images" / "I0001_01_02.png").unlink()
    with pytest.raises(DataError, match=r"^1 of \d+ referenced images are missing .*I0001_01_02\.png.*--allow-missing"):
        _build(spcd, tmp_path)
    _no_output(tmp_path)
    out = _build(spcd, tmp_path, allow_missing=True)
    info = dataset_info(out)
    card = (out / "README.md").read_text()
    assert "dropped (--allow-missing): 1 image(s) missing" in card and "I0001_01_02.png" in card
    n_src = sum(1 for f in ("train_data.csv", "test_data.csv") for _ in (spcd / f).read_text().splitlines()[1:])
    kept = sum(info["num_rows"]["scores"].values())
    assert 0 < kept < n_src
    assert not (out / "images" / "I0001_01_02.png").exists()


def test_corrupt_image_names_its_file(spcd, tmp_path):
    p = spcd / "images" / "I0002_03_01.png"
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"I0002_03_01\.png: corrupt PNG"):
        _build(spcd, tmp_path)
    _no_output(tmp_path)


def test_png_check_catches_flipped_byte(spcd):
    data = bytearray((spcd / "images" / "I0001_01_01.png").read_bytes())
    check_image_bytes(bytes(data), "ok.png")
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(DataError, match="bad.png: corrupt PNG .CRC mismatch"):
        check_image_bytes(bytes(data), "bad.png")
    with pytest.raises(DataError, match="x.jpg: corrupt or unreadable image"):
        check_image_bytes(b"not an image", "x.jpg")


@pytest.mark.parametrize("line, message", [
    ("I0001_01_01.png,I0001_01_02.png,nan", r"train_data\.csv:row 1: score 'nan' is not finite"),
    ("I0001_01_01.png,I0001_01_02.png,inf", r"train_data\.csv:row 1: score 'inf' is not finite"),
    ("I0001_01_01.png,I0001_01_02.png,abc", r"train_data\.csv:row 1: score 'abc' is not a number"),
    ("/abs/I0001_01_01.png,I0001_01_02.png,2.0",
     r"train_data\.csv:row 1: image name '/abs/I0001_01_01\.png' is absolute"),
    ("../I0001_01_01.png,I0001_01_02.png,2.0", r"train_data\.csv:row 1: image name '\.\./I0001_01_01\.png' leaves"),
    ("cat.png,I0001_01_02.png,2.0", r"train_data\.csv:row 1: image name 'cat\.png' is not an SPCD name"),
    ("I0001_01_01.png,I0001_01_02.png", r"train_data\.csv:row 1: expected 3 fields"),
])
def test_bad_csv_rows(spcd, tmp_path, line, message):
    _edit_csv(spcd / "train_data.csv", 1, line)
    with pytest.raises(DataError, match=message):
        _build(spcd, tmp_path)
    _no_output(tmp_path)


def test_duplicate_pairs(spcd, tmp_path):
    train = (spcd / "train_data.csv").read_text().splitlines()
    a, b, _ = train[1].split(",")
    test = spcd / "test_data.csv"
    test.write_text(test.read_text() + f"{b},{a},\n")
    with pytest.raises(DataError,
                       match=r"test_data\.csv:row \d+: duplicate pair .*reversed order of .*train_data\.csv:row 1"):
        _build(spcd, tmp_path)
    test.write_text(test.read_text() + f"{a},{b},\n")
    with pytest.raises(DataError, match="duplicate pair"):
        _build(spcd, tmp_path)


def test_bad_header(spcd, tmp_path):
    _edit_csv(spcd / "train_data.csv", 0, "a,b,c")
    with pytest.raises(DataError, match=r"train_data\.csv: expected the header 'image1,image2,score'"):
        _build(spcd, tmp_path)


def _edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d[2].pop("conversations"), r"test_data\.json:item 3: unknown JSON layout: 'conversations'"),
    (lambda d: d[2].pop("gt_score"), r"test_data\.json:item 3: unknown JSON layout: a score item needs"),
    (lambda d: d[0].__setitem__("image", ["I0001_01_01.png"]), r"test_data\.json:item 1: unknown JSON layout: 'image'"),
    (lambda d: d[1].__setitem__("gt_score", float("nan")), r"test_data\.json:item 2: score nan is not finite"),
    (lambda d: d[1]["conversations"][1].__setitem__("value", "It is big."), r"test_data\.json:item 2: unknown answer"),
    (lambda d: d.append(d[0]), r"test_data\.json:item \d+: duplicate pair"),
    (lambda d: d[0].__setitem__("image", ["../x/I0001_01_01.png", "I0001_01_02.png"]), r"item 1: .* leaves"),
])
def test_bad_score_json(pristine, ann, tmp_path, edit, message):
    _edit_json(ann / "score_task" / "test_data.json", edit)
    with pytest.raises(DataError, match=message):
        build_mspcd(pristine[0], ann, tmp_path / "out", labels_only=True, progress=False)
    _no_output(tmp_path)


def test_unknown_layouts(pristine, ann, tmp_path):
    (ann / "depict_task" / "depict_test.json").write_text(json.dumps({"items": []}))
    with pytest.raises(DataError, match=r"depict_test\.json: unknown JSON layout: expected a list"):
        build_mspcd(pristine[0], ann, tmp_path / "out", labels_only=True, progress=False)
    (ann / "depict_task" / "depict_test.json").write_text("[{")
    with pytest.raises(DataError, match=r"depict_test\.json: not valid JSON"):
        build_mspcd(pristine[0], ann, tmp_path / "out", labels_only=True, progress=False)
    (ann / "score_task" / "test_data.json").unlink()
    with pytest.raises(DataError, match=r"test_data\.json: M-SPCD annotation file not found"):
        build_mspcd(pristine[0], ann, tmp_path / "out", labels_only=True, progress=False)


def test_train_items(pristine, ann, tmp_path):
    (ann / "train").mkdir()
    (ann / "train" / "train.json").write_text(json.dumps([{"id": "1", "image": ["I0001_01_01.png", "I0001_01_02.png"],
                                                           "conversations": [{"from": "human", "value": "<image>q"},
                                                                             {"from": "gpt", "value":
                                                                              "The color difference between "
                                                                              "these two images is slight."}]}]))
    with pytest.raises(DataError, match=r"train\.json:item 1: unknown JSON layout: a score item .* without 'gt_score'"):
        build_mspcd(pristine[0], ann, tmp_path / "out", labels_only=True, progress=False)


def test_aligned_file_inconsistent(pristine, ann, tmp_path):
    def move(d):
        d[0]["gt_score"] = d[0]["gt_score"] + 1.0
    _edit_json(ann / "score_task" / "test_aligned_data.json", move)
    with pytest.raises(DataError, match=r"test_aligned_data\.json:item 1: gt_score .* differs from test_data\.json"):
        build_mspcd(pristine[0], ann, tmp_path / "out", labels_only=True, progress=False)


def test_cli_one_line_error(spcd, tmp_path, capsys):
    from cdbench.cli import main

    _edit_csv(spcd / "train_data.csv", 1, "I0001_01_01.png,I0001_01_02.png,nan")
    assert main(["build", "spcd", "--root", str(spcd), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cdbench: error: ") and err.count("\n") == 1 and "row 1" in err
    assert main(["build", "spcd", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "SPCD root not found" in capsys.readouterr().err


def test_output_inside_input_refused(spcd):
    with pytest.raises(DataError, match="must not be inside"):
        build_spcd(spcd, spcd / "built", progress=False)


def test_failed_overwrite_keeps_the_old_folder(spcd, tmp_path):
    out = _build(spcd, tmp_path)
    before = dataset_info(out)["label_fingerprint"]
    _edit_csv(spcd / "train_data.csv", 1, "I0001_01_01.png,I0001_01_02.png,nan")
    with pytest.raises(DataError, match="not finite"):
        _build(spcd, tmp_path, overwrite=True)
    assert dataset_info(out, verify=True)["label_fingerprint"] == before


def test_image_path_refuses_links_out_of_the_folder(spcd, tmp_path):
    from cdbench.data.dataset import image_path

    out = _build(spcd, tmp_path)
    (out / "images" / "evil.png").symlink_to(spcd / "train_data.csv")
    with pytest.raises(DataError, match="resolves outside"):
        image_path(out, "evil.png")
    assert image_path(out, "I0001_01_01.png").is_file()
