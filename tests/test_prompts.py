"""Shipped class lists and descriptions, class-text modes, templates and `vidssl prompts`."""

from __future__ import annotations

import argparse
import json
import re
from importlib import resources

import pytest

from vidssl.app import prompts as prompts_cmd
from vidssl.text.prompts import (
    PROMPT_QUESTION,
    MissingDescriptionsError,
    available_class_lists,
    class_texts,
    load_class_list,
    load_descriptions,
    write_template,
)

SETS = {"ucf101": 101, "hmdb51": 51, "kinetics400": 400}

HMDB51 = (
    "brush_hair cartwheel catch chew clap climb climb_stairs dive draw_sword dribble drink eat "
    "fall_floor fencing flic_flac golf handstand hit hug jump kick kick_ball kiss laugh pick pour "
    "pullup punch push pushup ride_bike ride_horse run shake_hands shoot_ball shoot_bow shoot_gun "
    "sit situp smile smoke somersault stand swing_baseball sword sword_exercise talk throw turn "
    "walk wave"
).split()


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


def run_cmd(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    prompts_cmd.add_arguments(parser)
    return prompts_cmd.run(parser.parse_args(argv))


# ---------------------------------------------------------------------------------------------
# shipped data


def test_assets_are_package_data():
    root = resources.files("vidssl") / "assets"
    for name in SETS:
        assert (root / "classes" / f"{name}.txt").is_file()
        assert (root / "descriptions" / f"{name}.json").is_file()
    assert set(SETS) <= set(available_class_lists())


@pytest.mark.parametrize("name", SETS)
def test_class_list_size_and_unique(name):
    classes = load_class_list(name)
    assert len(classes) == SETS[name]
    assert len(set(classes)) == len(classes)
    assert all(c == c.strip() and c for c in classes)


def test_class_list_official_order():
    ucf = load_class_list("ucf101")
    assert (ucf[0], ucf[36], ucf[69], ucf[100]) == (
        "ApplyEyeMakeup",
        "HandstandPushups",
        "PullUps",
        "YoYo",
    )
    assert load_class_list("hmdb51") == HMDB51
    k400 = load_class_list("kinetics400")
    assert k400 == sorted(k400)
    assert (k400[0], k400[-1]) == ("abseiling", "zumba")
    assert k400[208:210] == [
        "passing American football (in game)",
        "passing American football (not in game)",
    ]
    assert "skiing (not slalom or crosscountry)" in k400


@pytest.mark.parametrize("name", SETS)
def test_descriptions_cover_exactly_the_classes(name):
    classes = load_class_list(name)
    raw = json.loads(
        (resources.files("vidssl") / "assets" / "descriptions" / f"{name}.json").read_text("utf-8")
    )
    assert list(raw) == classes  # same names, same order, no extra keys
    for cls, text in raw.items():
        assert isinstance(text, str) and text.strip(), cls
        assert 1 <= sentences(text.strip()) <= 3, (cls, text)
    assert len(set(raw.values())) == len(raw)


def test_descriptions_distinct_across_sets():
    texts = [t for name in SETS for t in load_descriptions(name).values()]
    assert len(texts) == 552
    assert len(set(texts)) == len(texts)


# ---------------------------------------------------------------------------------------------
# class texts


def test_name_mode_turns_identifiers_into_words():
    classes = ["ApplyEyeMakeup", "climb_stairs", "YoYo", "passing American football (in game)"]
    assert class_texts(classes, "name") == [
        "apply eye makeup",
        "climb stairs",
        "yo yo",
        "passing American football (in game)",
    ]


def test_template_mode():
    assert class_texts(["BabyCrawling", "abseiling"], "template") == [
        "a video of a person baby crawling",
        "a video of a person abseiling",
    ]
    assert class_texts(["ride_bike"], "template", template="a clip of {}.") == [
        "a clip of ride bike."
    ]
    with pytest.raises(ValueError, match="template"):
        class_texts(["a"], "template", template="no slot")


def test_description_mode_sources_agree():
    classes = load_class_list("hmdb51")
    shipped = load_descriptions("hmdb51")
    expected = [shipped[c] for c in classes]
    assert class_texts(classes, "description", "hmdb51") == expected
    assert class_texts(classes, "description", shipped) == expected
    assert class_texts(classes, "description") == expected  # picks the covering shipped set
    assert class_texts(["x", "y"], "description", {"x": "An X.", "y": "A Y."}) == ["An X.", "A Y."]


def test_missing_descriptions_error_names_the_classes():
    with pytest.raises(MissingDescriptionsError) as info:
        class_texts(["walk", "fly", "hover"], "description", {"walk": "Legs.", "hover": "  "})
    assert info.value.missing == ["fly", "hover"]
    msg = str(info.value)
    assert "'fly'" in msg and "'hover'" in msg and "'walk'" not in msg


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown class text mode 'words'"):
        class_texts(["a"], "words")


# ---------------------------------------------------------------------------------------------
# files and templates


def test_class_list_file_formats_and_errors(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("# my classes\nWaveHand\n\njump rope\n", encoding="utf-8")
    assert load_class_list(plain) == ["WaveHand", "jump rope"]
    ind = tmp_path / "classInd.txt"
    ind.write_text("1 ApplyEyeMakeup\n2 ApplyLipstick\n", encoding="utf-8")
    assert load_class_list(str(ind)) == ["ApplyEyeMakeup", "ApplyLipstick"]
    dup = tmp_path / "dup.txt"
    dup.write_text("a\nb\na\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dup\.txt.*'a'"):
        load_class_list(dup)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_class_list(tmp_path / "nope.txt")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 3}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json.*'a'"):
        load_descriptions(bad)


def test_write_template_round_trip(tmp_path):
    classes = ["ApplyEyeMakeup", "shake_hands"]
    out = write_template(classes, tmp_path / "sub" / "desc.json")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["_question"] == {
        "ApplyEyeMakeup": PROMPT_QUESTION.format("apply eye makeup"),
        "shake_hands": "What are useful visual features for distinguishing shake hands in a video?",
    }
    assert load_descriptions(out) == {"ApplyEyeMakeup": "", "shake_hands": ""}
    with pytest.raises(MissingDescriptionsError) as info:
        class_texts(classes, "description", out)
    assert info.value.missing == classes

    data["ApplyEyeMakeup"] = "A brush near the eye."
    data["shake_hands"] = "Two right hands clasp. They pump up and down."
    out.write_text(json.dumps(data), encoding="utf-8")
    assert class_texts(classes, "description", out) == [
        "A brush near the eye.",
        "Two right hands clasp. They pump up and down.",
    ]
    with pytest.raises(FileExistsError, match="desc.json"):
        write_template(classes, out)
    write_template(classes, out, overwrite=True)
    assert load_descriptions(out)["shake_hands"] == ""


# ---------------------------------------------------------------------------------------------
# the command


def test_command_writes_prefilled_template(tmp_path, capsys):
    cls_file = tmp_path / "classes.txt"
    cls_file.write_text("ApplyEyeMakeup\nJuggleKnives\n", encoding="utf-8")
    out = tmp_path / "desc.json"
    assert run_cmd([str(cls_file), "--out", str(out), "--prefill", "ucf101"]) == 0
    assert "2 classes, 1 prefilled" in capsys.readouterr().out
    loaded = load_descriptions(out)
    assert loaded == {
        "ApplyEyeMakeup": load_descriptions("ucf101")["ApplyEyeMakeup"],
        "JuggleKnives": "",
    }
    assert run_cmd([str(cls_file), "--out", str(out)]) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err
    assert run_cmd([str(cls_file), "--out", str(out), "--force"]) == 0
    assert load_descriptions(out)["ApplyEyeMakeup"] == ""


def test_command_prints_questions_and_reports_bad_input(tmp_path, capsys):
    assert run_cmd(["hmdb51"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 51
    assert lines[6] == PROMPT_QUESTION.format("climb stairs")
    assert run_cmd([str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o.json")]) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert run_cmd(["ucf101", "--question", "no slot"]) == 2
    assert "--question" in capsys.readouterr().err
