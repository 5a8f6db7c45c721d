import json
import re

import pytest

from cdbench.data import ATTRIBUTES, SEVERITIES, format_description, parse_description


@pytest.mark.parametrize("name", ["depict_test.json", "depict_align_test.json", "depict_not_align_test.json"])
def test_reads_every_human_answer_exactly(shared_data, name):
    items = json.loads((shared_data / "m-spcd/depict_task" / name).read_text())
    for item in items:
        # The released answers rate the 7 attributes in order with one severity word each.
        expected = re.findall(r"slight|moderate|severe", item["human_answer"].lower())
        assert len(expected) == 7
        parsed = parse_description(item["human_answer"])
        assert [parsed[a] for a in ATTRIBUTES] == expected, item["human_answer"]


def test_paraphrase_tolerance():
    text = ("Slight white-balance shift; the brightness and contrast differ severely, colour contrast is "
            "moderate. Overall brightness: mild. The overall colour differs strongly. Details in the shadows "
            "are slightly different while highlights are moderately different.")
    assert parse_description(text) == {
        "white_balance": "slight", "brightness_contrast": "severe", "color_contrast": "moderate",
        "overall_brightness": "slight", "overall_color": "severe", "dark_details": "slight",
        "bright_details": "moderate",
    }
    p = parse_description("Moderate differences in light details and severe ones in brightness/contrast.")
    assert p["bright_details"] == "moderate" and p["brightness_contrast"] == "severe"


def test_unmentioned_and_verb_highlights_are_none():
    p = parse_description("The comparison highlights severe shifts in white balance.")
    assert p["white_balance"] == "severe"
    assert p["bright_details"] is None
    assert parse_description("") == dict.fromkeys(ATTRIBUTES)
    with pytest.raises(TypeError):
        parse_description(None)


def test_format_round_trip():
    sev = {a: SEVERITIES[i % 3] for i, a in enumerate(ATTRIBUTES)}
    assert parse_description(format_description(sev)) == sev
