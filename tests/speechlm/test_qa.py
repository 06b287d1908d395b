"""Question-answer manifests (minispeech/speechlm/qa.py, `minispeech corpus qa`).

Answers are checked on hand-made rows, the number rule against `number_words` for
every n in 0..999, and the shipped data/tinyspeech_qa files against a fresh build from
the bundled corpus.
"""

import json
from collections import Counter
from pathlib import Path

import pytest

from minispeech.cli import main
from minispeech.data.corpus_text import number_words
from minispeech.data.manifest import ManifestError, read_manifest
from minispeech.speechlm.qa import (
    N_TRAIN_PHRASINGS,
    PHRASINGS,
    QUESTION_TYPES,
    answer,
    first_number,
    majority_baseline,
    qa_rows,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "data" / "tinyspeech_qa"
FILES = ("train", "dev", "test", "far")


def _row(text: str, gender: str = "female", k: int = 0) -> dict:
    return {
        "audio_filepath": f"/corpus/audio/{k:03d}.opus",
        "duration": 1.5,
        "text": text,
        "speaker": "f001",
        "gender": gender,
    }


@pytest.mark.parametrize(
    "text, kind, expected",
    [
        ("call bob at seven thirty", "transcribe", "call bob at seven thirty"),
        ("meet emma on friday morning", "day", "friday"),
        ("monday red sunday", "day", "monday"),
        ("set a timer for five minutes", "day", "none"),
        ("the pink cat sleeps near the red box", "colour", "pink"),
        ("open the door", "colour", "none"),
        ("alice and tom are in the hall", "name", "alice"),
        ("play some jazz music", "name", "none"),
        ("set a timer for fifty three minutes", "number", "fifty three"),
        ("my number is five two seven", "number", "five"),
        ("call bob at seven thirty", "number", "seven"),
        ("it's quarter to ten on friday", "number", "ten"),
        ("turn the volume up to twelve", "number", "twelve"),
        ("the meeting is on monday the third of may", "number", "none"),
        ("count the cups", "count", "three"),
        ("one two three four five six seven eight nine ten eleven", "count", "eleven"),
        ("please turn on the lights", "first_word", "please"),
        ("please turn on the lights", "last_word", "lights"),
        ("hello", "first_word", "hello"),
        ("hello", "last_word", "hello"),
    ],
)
def test_answers_on_hand_made_rows(text, kind, expected):
    assert answer(_row(text), kind) == expected


def test_gender_answer_and_a_bad_gender():
    assert answer(_row("hi", gender="male"), "gender") == "male"
    assert answer(_row("hi", gender="female"), "gender") == "female"
    with pytest.raises(ManifestError, match="gender"):
        answer({**_row("hi"), "gender": None}, "gender")
    with pytest.raises(ValueError, match="unknown question type"):
        answer(_row("hi"), "colour_of_sky")


def test_every_spelled_number_is_read_back_whole():
    for n in range(1000):  # number_words(n) inside a sentence, then more words
        spoken = number_words(n)
        assert first_number(f"set {spoken} red cups") == spoken, n


@pytest.mark.parametrize(
    "text, expected",
    [
        ("three hundred five apples", "three hundred five"),
        ("three hundred forty two", "three hundred forty two"),
        ("three hundred zero", "three hundred"),  # zero never follows hundred
        ("hundred cups then two", "two"),  # a lone hundred is no number
        ("zero hundred", "zero"),
        ("twenty zero", "twenty"),  # a tens word takes only one..nine
        ("twenty seven eight", "twenty seven"),
        ("seventeen four", "seventeen"),
        ("half past six", "six"),
        ("first second third", "none"),
        ("", "none"),
    ],
)
def test_number_rule_edges(text, expected):
    assert first_number(text) == expected


def test_phrasings_four_per_type_and_held_out_disjoint_from_train():
    assert set(PHRASINGS) == set(QUESTION_TYPES)
    train, held_out = set(), set()
    for kind in QUESTION_TYPES:
        assert len(PHRASINGS[kind]) >= N_TRAIN_PHRASINGS + 1 == 4, kind
        train |= set(PHRASINGS[kind][:N_TRAIN_PHRASINGS])
        held_out |= set(PHRASINGS[kind][N_TRAIN_PHRASINGS:])
    everything = [p for kind in QUESTION_TYPES for p in PHRASINGS[kind]]
    assert len(set(everything)) == len(everything)  # no phrasing asks two things
    assert not train & held_out
    assert all(p == p.lower().strip() and p.replace(" ", "").isalpha() for p in train)


def _rows(n: int) -> list[dict]:
    words = "alice red monday seven cups hall the box"
    return [_row(" ".join(words.split()[: 1 + k % 8]), k=k) for k in range(n)]


def test_train_draw_is_deterministic_by_seed():
    rows = _rows(40)
    assert qa_rows(rows, "train", seed=3) == qa_rows(rows, "train", seed=3)
    assert qa_rows(rows, "train", seed=3) != qa_rows(rows, "train", seed=4)


def test_train_mix_distinct_types_train_phrasings_transcribe_most():
    rows = _rows(600)
    qa = qa_rows(rows, "train", seed=0, per_utterance=3)
    assert len(qa) == 3 * len(rows)
    for k in range(len(rows)):
        asked = qa[3 * k : 3 * k + 3]
        assert {q["audio_filepath"] for q in asked} == {rows[k]["audio_filepath"]}
        assert len({q["question_type"] for q in asked}) == 3
    assert {q["phrasing"] for q in qa} == {"train"}
    assert all(q["prompt"] in PHRASINGS[q["question_type"]][:3] for q in qa)
    counts = Counter(q["question_type"] for q in qa)
    assert set(counts) == set(QUESTION_TYPES)
    assert counts["transcribe"] == max(counts.values())
    assert min(counts.values()) > 0.07 * len(qa)  # every type well represented
    all_types = qa_rows(rows[:5], "train", per_utterance=9)
    assert Counter(q["question_type"] for q in all_types) == dict.fromkeys(
        QUESTION_TYPES, 5
    )
    with pytest.raises(ValueError, match="per_utterance"):
        qa_rows(rows, "train", per_utterance=10)
    with pytest.raises(ValueError, match="split"):
        qa_rows(rows, "far")


def test_dev_asks_every_type_once_and_test_adds_the_held_out_phrasing():
    rows = _rows(6)
    dev = qa_rows(rows, "dev")
    test = qa_rows(rows, "test")
    assert len(dev) == 9 * len(rows) and len(test) == 18 * len(rows)
    both = sorted((kind, p) for kind in QUESTION_TYPES for p in ("train", "heldout"))
    for k in range(len(rows)):
        asked = dev[9 * k : 9 * k + 9]
        assert [q["question_type"] for q in asked] == list(QUESTION_TYPES)
        assert {q["phrasing"] for q in asked} == {"train"}
        asked = test[18 * k : 18 * k + 18]
        assert sorted((q["question_type"], q["phrasing"]) for q in asked) == both
    held_out = [q for q in test if q["phrasing"] == "heldout"]
    assert all(q["prompt"] == PHRASINGS[q["question_type"]][3] for q in held_out)
    rotated = Counter(q["prompt"] for q in dev if q["question_type"] == "day")
    assert sorted(rotated.values()) == [2, 2, 2]  # the 3 train phrasings in turn


def test_a_row_keeps_only_what_it_needs():
    row = {**_row("red cups"), "offset": 0.5, "accent": "en-US", "words": []}
    q = qa_rows([row], "dev")[0]
    assert q == {
        "audio_filepath": row["audio_filepath"],
        "duration": 1.5,
        "offset": 0.5,
        "prompt": q["prompt"],
        "answer": "red cups",
        "question_type": "transcribe",
        "phrasing": "train",
        "speaker": "f001",
    }


def test_majority_baseline_by_hand():
    rows = [
        {"question_type": "day", "answer": "none"},
        {"question_type": "day", "answer": "monday"},
        {"question_type": "day", "answer": "none"},
        {"question_type": "day", "answer": "friday"},
        {"question_type": "gender", "answer": "male"},
        {"question_type": "gender", "answer": "female"},  # a tie: "female" < "male"
        {"question_type": "transcribe", "answer": "hi"},
    ]
    assert majority_baseline(rows) == {
        "transcribe": ("hi", 1.0),
        "day": ("none", 0.5),  # 2 of 4
        "gender": ("female", 0.5),
    }


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_shipped_files_are_a_fresh_build_and_their_audio_exists(corpus_dir):
    for name, split in zip(FILES, ("train", "dev", "test", "test")):
        shipped = _read(SHIPPED / f"{name}.jsonl")
        assert {(SHIPPED / q["audio_filepath"]).is_file() for q in shipped} == {True}
        corpus = read_manifest(corpus_dir / f"{name}.jsonl", check_audio=False)
        fresh = qa_rows(corpus, split, seed=0, per_utterance=3)
        assert len(shipped) == len(fresh), name
        for q, f in zip(shipped, fresh):
            resolved = (SHIPPED / q["audio_filepath"]).resolve()
            assert resolved == Path(f["audio_filepath"]).resolve(), name
            assert {**q, "audio_filepath": ""} == {**f, "audio_filepath": ""}, name


def _tiny_corpus(folder: Path) -> None:
    texts = ["meet alice on friday", "my number is five two", "red cups"]
    for k, name in enumerate(FILES):
        rows = []
        for j, text in enumerate(texts):
            audio = folder / "audio" / f"{name}_{j}.opus"
            audio.parent.mkdir(parents=True, exist_ok=True)
            audio.write_bytes(b"")  # only existence is checked
            row = _row(text, gender=("male", "female")[j % 2], k=j)
            rows.append({**row, "audio_filepath": f"audio/{audio.name}"})
            rows[-1]["speaker"] = f"{name}{k}"
        lines = "".join(json.dumps(row) + "\n" for row in rows)
        (folder / f"{name}.jsonl").write_text(lines)


def test_cli_writes_four_files_with_paths_relative_to_the_output(tmp_path, capsys):
    _tiny_corpus(tmp_path / "corpus")
    out = tmp_path / "deeper" / "qa"
    argv = ["corpus", "qa", "--corpus", str(tmp_path / "corpus"), "--out", str(out)]
    assert main([*argv, "--seed", "1", "--per-utterance", "2"]) == 0
    printed = capsys.readouterr().out
    assert "dev.jsonl: 27 questions about 3 utterances" in printed
    assert "| number | 3 | none | 66.7% |" in printed  # none, five, none
    sizes = {name: len(_read(out / f"{name}.jsonl")) for name in FILES}
    assert sizes == {"train": 6, "dev": 27, "test": 54, "far": 54}
    for name in FILES:
        for q in _read(out / f"{name}.jsonl"):
            assert not Path(q["audio_filepath"]).is_absolute()
            assert (out / q["audio_filepath"]).is_file()
    assert _read(out / "far.jsonl")[0]["answer"] == "meet alice on friday"


def test_cli_refuses_a_corpus_without_gender_and_writes_nothing(tmp_path, capsys):
    _tiny_corpus(tmp_path / "corpus")
    test = tmp_path / "corpus" / "test.jsonl"
    rows = _read(test)
    del rows[1]["gender"]
    test.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "qa"
    argv = ["corpus", "qa", "--corpus", str(tmp_path / "corpus"), "--out", str(out)]
    assert main(argv) == 2
    assert "gender" in capsys.readouterr().err
    assert not out.exists()
    assert main([*argv[:-1], str(tmp_path / "corpus" / "dev.jsonl")]) == 2
    assert main([*argv, "--per-utterance", "10"]) == 2
