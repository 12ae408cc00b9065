"""RAVDESS read from its own layout: names, the emotion -> sentiment mapping, folds by actor, and a
folder with every kind of bad entry (each named, the rest used)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msa.data import ravdess
from msa.data.ravdess import RavdessNameError, actor_folds, emotion_value, parse_name, scan

# The published valence norms (Warriner, Kuperman & Brysbaert 2013, V.Mean.Sum), typed in by hand
# from the paper's supplementary table: the mapping must follow them, not the other way round.
NORMS = {"neutral": 5.50, "happy": 8.47, "sad": 2.10, "calm": 6.89, "surprised": 6.57, "disgusted": 2.68}


def test_names_are_read_field_by_field() -> None:
    c = parse_name(Path("Actor_09/03-01-04-01-02-02-09.wav"))
    assert (c.modality, c.emotion, c.intensity, c.statement, c.repetition, c.actor) == (
        "audio only",
        "sad",
        "normal",
        2,
        2,
        9,
    )
    assert c.sentence == "Dogs are sitting by the door" and c.speaker == "actor_09" and c.sex == "male"
    assert parse_name(Path("01-01-03-02-01-01-12.mp4")).modality == "audio-video"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("03-01-09-01-01-01-01", "unknown emotion code 09"),
        ("03-01-01-02-01-01-01", "neutral has no strong intensity"),
        ("03-02-03-01-01-01-01", "a song"),
        ("02-01-03-01-01-01-01", "video only"),
        ("03-01-03-03-01-01-01", "unknown intensity 03"),
        ("03-01-03-01-01-01-25", "unknown actor 25"),
        ("happy_take_1", "not a RAVDESS name"),
        ("03-01-03-01-01-01", "not a RAVDESS name"),
    ],
)
def test_bad_names_say_which_field(name: str, why: str) -> None:
    with pytest.raises(RavdessNameError, match=why):
        parse_name(Path(name + ".wav"))


def test_the_mapping_follows_the_norms() -> None:
    # 0.75 x (valence - valence of "neutral"), x 3/4 at normal intensity: by hand from the norms.
    for emotion, word in (("happy", "happy"), ("sad", "sad"), ("calm", "calm"), ("disgust", "disgusted")):
        strong = 0.75 * (NORMS[word] - NORMS["neutral"])
        assert emotion_value(emotion, "strong") == pytest.approx(strong, abs=1e-9)
        assert emotion_value(emotion, "normal") == pytest.approx(0.75 * strong, abs=1e-9)
    assert emotion_value("happy", "strong") == pytest.approx(2.2275)
    assert emotion_value("sad", "normal") == pytest.approx(-1.9125)
    assert emotion_value("neutral", "normal") == 0.0
    assert 0 < emotion_value("surprised", "strong") < emotion_value("calm", "strong") < emotion_value("happy", "strong")
    for e in ravdess.NEGATIVE:
        assert emotion_value(e, "normal") < -1.5
    with pytest.raises(ValueError, match="unknown emotion"):
        emotion_value("bored", "normal")


def test_actor_folds_keep_men_and_women_in_every_fold() -> None:
    actors = [a for a in range(1, 25) if a not in (5, 10, 17, 24)]  # the 20 in this repository's copy
    folds = actor_folds(actors, 4)
    assert folds == actor_folds(list(reversed(actors)), 4)  # deterministic, order-free
    for f in range(4):
        members = [a for a in actors if folds[a] == f]
        assert len(members) == 5
        assert {a % 2 for a in members} == {0, 1}
    with pytest.raises(ValueError):
        actor_folds([1, 2], 4)


def _touch(root: Path, rel: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")


def test_a_messy_folder_names_every_bad_entry_and_keeps_the_rest(tmp_path: Path) -> None:
    good = [
        "Actor_01/03-01-03-01-01-01-01.wav",
        "Actor_01/03-01-04-02-02-01-01.flac",
        "Actor_02/03-01-02-01-01-01-02.wav",
    ]
    bad = {
        "Actor_01/03-01-09-01-01-01-01.wav": "unknown emotion code 09",
        "Actor_01/my take.wav": "not a RAVDESS name",
        "Actor_02/03-01-03-01-01-01-07.wav": "names actor 07 but is in Actor_02",
        "Actor_02/notes.txt": "not a media file",
        "03-01-03-01-01-01-03.wav": "not in an Actor_NN folder",
        "Actress_3/03-01-03-01-01-01-03.wav": "not an Actor_NN folder",
    }
    for rel in [*good, *bad]:
        _touch(tmp_path, rel)
    found = scan(tmp_path)
    assert sorted(str(c.path.relative_to(tmp_path)) for c in found.clips) == sorted(good)
    assert len(found.skipped) == len(bad)
    for rel, why in bad.items():
        head = rel.split("/")[0] + "/" if rel.startswith("Actress") else rel
        assert any(line.startswith(head) and why in line for line in found.skipped), (rel, found.skipped)
    assert found.actors == [1, 2] and 3 in found.missing_actors()
    assert [c.actor for c in scan(tmp_path, actors=[2]).clips] == [2]


def test_a_folder_with_nothing_usable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RavdessNameError, match="not a folder"):
        scan(tmp_path / "nowhere")
    _touch(tmp_path, "Actor_01/readme.wav")
    with pytest.raises(RavdessNameError, match="no usable RAVDESS clip.*not a RAVDESS name"):
        scan(tmp_path)
