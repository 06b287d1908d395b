"""Bad manifests: each one fails with one line naming `manifest:line: field`, and
reading one writes nothing and changes nothing.

One table row per kind of bad input. Every bad manifest starts with a good line, so
the expected line number also proves the counting. Cases that need the audio or the
tokenizer (a segment past the end, a character outside the vocabulary) go through
AudioTextDataset, as training and evaluation do.
"""

import json
import math
import re

import numpy as np
import pytest

from minispeech.audio.io import save_audio
from minispeech.data.datasets import AudioTextDataset
from minispeech.data.manifest import ManifestError, read_manifest, write_manifest
from minispeech.data.tokenizers import CharTokenizer, load_tokenizer
from minispeech.errors import MinispeechError

SR = 16000
GOOD = {"audio_filepath": "audio/a.wav", "duration": 1.0, "text": "hello"}


def line(**fields) -> str:
    """A JSON line: GOOD with `fields` replaced (None values are kept as null)."""
    return json.dumps({**GOOD, **fields})


def without(key: str) -> str:
    return json.dumps({k: v for k, v in GOOD.items() if k != key})


@pytest.fixture
def folder(tmp_path):
    """audio/a.wav (1 s of noise), audio/b.wav (0.5 s), audio/bad.wav (not audio)."""
    (tmp_path / "audio").mkdir()
    rng = np.random.default_rng(0)
    for name, seconds in (("a", 1.0), ("b", 0.5)):
        wave = (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)
        save_audio(tmp_path / "audio" / f"{name}.wav", wave, SR)
    (tmp_path / "audio" / "bad.wav").write_text("not audio\n")
    return tmp_path


def snapshot(folder) -> dict:
    """Every file under `folder` -> its bytes (to prove nothing was written)."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def read_plain(path):
    return read_manifest(path, required=("audio_filepath", "duration", "text"))


def read_dataset(path):
    return AudioTextDataset(path, tokenizer=CharTokenizer.from_texts(["helo "]))


# (lines after the good first line, reader, regex after "m.jsonl:"), id=the case
BAD = [
    pytest.param(
        ['{"audio_filepath": "audio/a.wav"'],
        read_plain,
        "2: json: invalid",
        id="bad-json",
    ),
    pytest.param(
        ['["audio/a.wav", 1.0]'], read_plain, "2: json: not a JSON", id="not-an-object"
    ),
    pytest.param(
        [without("audio_filepath")],
        read_plain,
        "2: audio_filepath: missing",
        id="no-audio-path",
    ),
    pytest.param(
        [without("duration")], read_plain, "2: duration: missing", id="no-duration"
    ),
    pytest.param([without("text")], read_dataset, "2: text: missing", id="no-text"),
    pytest.param(
        [line(duration=None)], read_plain, "2: duration: null", id="null-duration"
    ),
    pytest.param(
        [line(duration="1.0")],
        read_plain,
        '2: duration: must be a number, got "1.0"',
        id="duration-string",
    ),
    pytest.param(
        [line(duration=True)],
        read_plain,
        "2: duration: must be a number, got true",
        id="duration-bool",
    ),
    pytest.param(
        [line(audio_filepath=7)],
        read_plain,
        "2: audio_filepath: must be a string",
        id="path-number",
    ),
    pytest.param(
        [line(text=["hi"])], read_plain, "2: text: must be a string", id="text-list"
    ),
    pytest.param(
        [line(speaker=1.5)],
        read_plain,
        "2: speaker: must be a string or an integer",
        id="speaker-float",
    ),
    pytest.param(
        [line(duration=0)],
        read_plain,
        "2: duration: must be positive, got 0",
        id="zero-duration",
    ),
    pytest.param(
        [line(duration=-2.5)],
        read_plain,
        "2: duration: must be positive, got -2.5",
        id="negative-duration",
    ),
    pytest.param(
        [line(duration=math.nan)],
        read_plain,
        "2: duration: must be finite, got nan",
        id="nan-duration",
    ),
    pytest.param(
        [line(offset=-0.5, duration=0.2)],
        read_plain,
        "2: offset: must be >= 0, got -0.5",
        id="negative-offset",
    ),
    pytest.param(
        [line(offset=math.inf)],
        read_plain,
        "2: offset: must be finite, got inf",
        id="inf-offset",
    ),
    pytest.param(
        [line(offset="0.5")],
        read_plain,
        '2: offset: must be a number, got "0.5"',
        id="offset-string",
    ),
    pytest.param([line(text="  ")], read_plain, "2: text: empty text", id="empty-text"),
    pytest.param(
        [line(audio_filepath=" ")],
        read_plain,
        "2: audio_filepath: empty path",
        id="empty-path",
    ),
    pytest.param(
        [line(audio_filepath="audio/nope.wav")],
        read_plain,
        "2: audio_filepath: audio file not found: .*nope.wav",
        id="missing-audio",
    ),
    pytest.param(
        [line(audio_filepath="audio")],
        read_plain,
        "2: audio_filepath: not a file",
        id="audio-is-a-folder",
    ),
    pytest.param(
        [line()[:-1] + ', "duration": 2}'],
        read_plain,
        "2: duration: key appears more than once",
        id="key-twice",
    ),
    pytest.param(
        [line()],
        read_plain,
        "2: audio_filepath: duplicate of line 1",
        id="duplicate-entry",
    ),
    pytest.param(
        [
            line(id="u1", audio_filepath="audio/b.wav", duration=0.5),
            line(id="u1", duration=0.5, offset=0.5),
        ],
        read_plain,
        '3: id: "u1" is also the id on line 2',
        id="duplicate-id",
    ),
    pytest.param(
        ["", "  ", line(duration=-1)],
        read_plain,
        "4: duration: must be positive",
        id="blank-lines-keep-numbers",
    ),
    pytest.param(
        [line(offset=5.0, duration=0.5)],
        read_dataset,
        r"2: offset: 5.0 s is past the end of .*a.wav \(1.000 s\)",
        id="offset-past-end",
    ),
    pytest.param(
        [line(offset=1.0, duration=0.5)],
        read_dataset,
        "2: offset: 1.0 s is past the end",
        id="offset-at-end",
    ),
    pytest.param(
        [line(offset=0.5, duration=2.0)],
        read_dataset,
        r"2: duration: segment 0.5 \+ 2.0 s ends after .*a.wav",
        id="segment-runs-past-end",
    ),
    pytest.param(
        [line(audio_filepath="audio/bad.wav", offset=0.1, duration=0.2)],
        read_dataset,
        "2: audio_filepath: .*bad.wav: not a readable audio file",
        id="segment-of-corrupt-audio",
    ),
    pytest.param(
        [line(text="hello world", audio_filepath="audio/b.wav", duration=0.5)],
        read_dataset,
        r"2: text: utterance 1 \(b\): character 'w' \(U\+0077\) in 'hello world'",
        id="character-outside-vocabulary",
    ),
]


@pytest.mark.parametrize("lines, reader, expected", BAD)
def test_bad_manifest_is_one_line_naming_file_and_line(folder, lines, reader, expected):
    path = folder / "m.jsonl"
    path.write_text("".join(text + "\n" for text in [line()] + lines), encoding="utf-8")
    before = snapshot(folder)
    with pytest.raises(ManifestError) as error:
        reader(path)
    message = str(error.value)
    assert "\n" not in message, message
    assert error.value.problems == [message]
    assert message.startswith(f"{path}:"), message
    assert re.match(f"{re.escape(str(path))}:{expected}", message), message
    assert isinstance(error.value, (MinispeechError, ValueError))
    assert snapshot(folder) == before  # nothing written, nothing changed


# (id, raw bytes of the manifest or None for no file, regex): the file as a whole
WHOLE_FILE = [
    ("missing-file", None, "manifest file not found"),
    ("a-folder", "folder", "is a folder, not a manifest file"),
    ("empty-file", b"", r"empty manifest \(no entries\)"),
    ("only-blank-lines", b"\n  \n\r\n", r"empty manifest \(no entries\)"),
    ("not-utf8", b"\xff\xfe\x00{", r"not UTF-8 text \(byte 0\)"),
    ("bom-only", b"\xef\xbb\xbf", r"empty manifest \(no entries\)"),
]


@pytest.mark.parametrize(
    "data, expected", [c[1:] for c in WHOLE_FILE], ids=[c[0] for c in WHOLE_FILE]
)
def test_bad_manifest_file_is_named(folder, data, expected):
    path = folder / "m.jsonl"
    if data == "folder":
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)
    before = snapshot(folder)
    with pytest.raises(ManifestError, match=f"^{re.escape(str(path))}: {expected}$"):
        read_plain(path)
    assert snapshot(folder) == before


# (id, how the text is encoded): accepted, read exactly like the plain file
ACCEPTED = [
    ("plain", lambda text: text.encode()),
    ("utf8-bom", lambda text: b"\xef\xbb\xbf" + text.encode()),
    ("crlf", lambda text: text.replace("\n", "\r\n").encode()),
    (
        "bom-and-crlf",
        lambda text: b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode(),
    ),
    ("no-final-newline", lambda text: text.rstrip("\n").encode()),
]


@pytest.mark.parametrize(
    "encode", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_bom_and_crlf_are_accepted(folder, encode):
    lines = [
        line(text="hello"),
        line(audio_filepath="audio/b.wav", duration=0.5, text="héllo"),
    ]
    (folder / "m.jsonl").write_bytes(encode("\n".join(lines) + "\n"))
    rows = read_plain(folder / "m.jsonl")
    assert [row["text"] for row in rows] == ["hello", "héllo"]
    assert rows[0]["audio_filepath"] == str(folder / "audio" / "a.wav")
    data = AudioTextDataset(
        folder / "m.jsonl", tokenizer=CharTokenizer.from_texts(["hello", "héllo"])
    )
    assert data[1]["audio"].shape == (SR // 2,)


def test_segments_load_only_their_span(folder):
    """offset/duration select a segment, as NeMo manifests of long recordings do."""
    lines = [line(offset=0.25, duration=0.5, id="seg"), line(id="whole")]
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    data = AudioTextDataset(folder / "m.jsonl")
    whole = data[1]["audio"]
    assert whole.shape == (SR,)
    assert data[0]["audio"].tolist() == whole[SR // 4 : 3 * SR // 4].tolist()


def test_audio_that_breaks_after_reading_names_the_line(folder):
    (folder / "m.jsonl").write_text(
        "\n".join([line(), line(audio_filepath="audio/b.wav", duration=0.5)]) + "\n"
    )
    data = AudioTextDataset(folder / "m.jsonl")
    (folder / "audio" / "b.wav").write_bytes(b"RIFF")  # replaced after the check
    with pytest.raises(
        MinispeechError,
        match=rf"^{folder / 'm.jsonl'}:2: .*b.wav: not a readable audio file",
    ):
        data[1]


def test_write_manifest_refuses_nan_and_keeps_the_old_file(folder):
    path = write_manifest(
        folder / "out.jsonl", [{"audio_filepath": "a.wav", "duration": 1.0}]
    )
    before = snapshot(folder)
    bad_rows = [
        {"audio_filepath": "a.wav", "duration": 1.0},
        {"audio_filepath": "b.wav", "duration": math.nan},
    ]
    with pytest.raises(ManifestError, match=f"^{path}: row 1: not writable as JSON"):
        write_manifest(path, bad_rows)
    assert snapshot(folder) == before


# ---------------------------------------------------------------- tokenizer files


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("vocab.txt", b"ab\nc\n", "vocab.txt: tokens must be single chars"),
        ("vocab.txt", b"a\na\n", "vocab.txt: duplicate tokens"),
        ("tokenizer.model", b"junk", "tokenizer.model: not a SentencePiece model"),
    ],
)
def test_bad_tokenizer_file_is_named(tmp_path, name, data, expected):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ValueError) as error:
        load_tokenizer(tmp_path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(tmp_path / name)), message
    assert expected in message


def test_vocab_with_bom_and_crlf_reads_like_the_plain_one(tmp_path):
    (tmp_path / "vocab.txt").write_bytes(b"\xef\xbb\xbf<space>\r\na\r\nb\r\n")
    assert load_tokenizer(tmp_path).tokens == [" ", "a", "b"]
