"""The bundled tinyspeech corpus (committed) and its generator (espeak-ng, ctypes)."""

import dataclasses
import functools
import io
import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from minispeech.data.corpus_audio import (
    align_words,
    encode_opus,
    ogg_crc,
    set_ogg_serial,
    speech_bounds,
    word_spans,
)
from minispeech.data.corpus_text import ALPHABET, number_words, sentence, vocabulary
from minispeech.data.espeak import WordEvent

ASR = ("train", "dev", "test", "far")
REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=None)
def _rows(corpus: Path, name: str) -> tuple:
    with open(corpus / f"{name}.jsonl") as f:
        return tuple(json.loads(line) for line in f)


def _all(corpus: Path, names=ASR + ("tts_train", "tts_test")) -> list[dict]:
    return [row for name in names for row in _rows(corpus, name)]


# ---------------------------------------------------------------- committed corpus
def test_files_exist_and_durations_match_headers(corpus_dir):
    for row in _all(corpus_dir):
        path = corpus_dir / row["audio_filepath"]
        assert not Path(row["audio_filepath"]).is_absolute()
        info = sf.info(str(path))
        assert info.samplerate == 16000 and info.channels == 1, path
        assert abs(info.frames / 16000 - row["duration"]) <= 0.01, path


def _speakers(corpus: Path, name: str) -> dict:
    """{speaker id: number of utterances} in one manifest."""
    counts: dict = {}
    for row in _rows(corpus, name):
        counts[row["speaker"]] = counts.get(row["speaker"], 0) + 1
    return counts


def test_sizes_and_counts(corpus_dir):
    train = _speakers(corpus_dir, "train")
    assert len(train) >= 100 and min(train.values()) >= 15
    for name, (low, high) in {
        "dev": (160, 240), "test": (240, 300), "far": (200, 300)
    }.items():  # fmt: skip
        assert low <= len(_rows(corpus_dir, name)) <= high, name
        assert 8 <= len(_speakers(corpus_dir, name)) <= 10, name
    data = REPO / "data"
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    assert size <= 30e6, f"data/ is {size / 1e6:.1f} MB"


def test_rows_have_speaker_accent_and_kind(corpus_dir):
    from minispeech.data.corpus_speakers import ACCENT_VOICES

    for row in _all(corpus_dir):
        assert row["gender"] in ("male", "female"), row
        assert row["accent"] in ACCENT_VOICES, row
        assert row["kind"] in ("template", "free"), row


def test_split_speakers_disjoint(corpus_dir):
    speakers = {n: set(_speakers(corpus_dir, n)) for n in ASR + ("tts_train",)}
    names = list(speakers)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not speakers[a] & speakers[b], (a, b)
    for name in ("dev", "test"):
        genders = [r["gender"] for r in _rows(corpus_dir, name)]
        assert genders.count("male") == genders.count("female"), name


def _table() -> dict:
    from minispeech.data.corpus import SPEAKERS

    return {s.id: s for s in SPEAKERS}


def test_speakers_match_the_table_and_identities_are_distinct(corpus_dir):
    table = _table()
    for row in _all(corpus_dir):
        speaker = table[row["speaker"]]
        assert (speaker.gender, speaker.accent) == (row["gender"], row["accent"])
    ids = {r["speaker"] for r in _all(corpus_dir)}
    by_variant: dict = {}
    for speaker_id in ids:
        s = table[speaker_id]
        by_variant.setdefault(s.variant, []).append(s.pitch)
    for variant, pitches in by_variant.items():  # same variant: >= 15 steps apart
        pitches.sort()
        assert all(b - a >= 15 for a, b in zip(pitches, pitches[1:])), variant


def test_heldout_speakers_have_what_train_has_not(corpus_dir):
    table = _table()
    train = [table[i] for i in _speakers(corpus_dir, "train")]
    train_accents = {s.accent for s in train}
    assert len(train_accents) >= 4
    assert min(s.pitch for s in train) <= 10 and max(s.pitch for s in train) >= 90
    assert min(s.rate for s in train) <= 125 and max(s.rate for s in train) >= 235
    train_variants = {s.variant for s in train}
    for name in ("dev", "test"):
        held = [table[i] for i in _speakers(corpus_dir, name)]
        assert any(s.variant not in train_variants for s in held), name
        assert any(s.accent not in train_accents for s in held), name
    far = [table[i] for i in _speakers(corpus_dir, "far")]
    for s in far:
        assert s.variant not in train_variants and s.accent not in train_accents
        assert s.pitch <= 15 or s.pitch >= 85, s
        assert 120 <= s.rate <= 130 or 220 <= s.rate <= 240, s


def test_text_kinds_per_split(corpus_dir):
    for name in ASR:
        kinds = [r["kind"] for r in _rows(corpus_dir, name)]
        assert "free" in kinds and "template" in kinds, name
    train = [r["kind"] for r in _rows(corpus_dir, "train")]
    assert train.count("free") >= 0.25 * len(train)


def test_far_conditions(corpus_dir):
    rows = _rows(corpus_dir, "far")
    for row in rows:
        if row["noise"] == "clean":
            assert row["snr_db"] is None, row
        else:
            assert row["noise"] in ("white", "pink", "babble"), row
            assert row["snr_db"] in (10.0, 20.0), row
    clean = sum(r["noise"] == "clean" for r in rows)
    assert abs(clean / len(rows) - 1 / 3) < 0.05
    assert {r["noise"] for r in rows} == {"clean", "white", "pink", "babble"}


def test_far_mix_hits_the_snr_exactly():
    from minispeech.audio.noise import snr_db
    from minispeech.data.corpus_far import make_noise, mix

    rng = np.random.default_rng(0)
    speech = 0.1 * np.sin(np.arange(16000) / 7.0).astype(np.float32)
    others = [rng.standard_normal(5000).astype(np.float32) for _ in range(4)]
    for kind in ("white", "pink", "babble"):
        for target in (10.0, 20.0):
            noisy = mix(speech, make_noise(kind, len(speech), rng, others), target)
            noise = noisy.astype(np.float64) - speech
            assert abs(snr_db(speech, noise) - target) < 1e-3, (kind, target)


def test_make_speakers_bigger_corpus_keeps_identities_apart():
    from minispeech.data.corpus_speakers import make_speakers

    speakers = make_speakers(240, seed=1)
    pitches: dict = {}
    for s in speakers:
        pitches.setdefault(s.variant, []).append(s.pitch)
    for variant, values in pitches.items():
        values.sort()
        assert all(b - a >= 15 for a, b in zip(values, values[1:])), variant
    assert len({s.id for s in speakers}) == len(speakers)
    with pytest.raises(ValueError):
        make_speakers(241)


def test_texts_normalized_unique_and_vocabulary(corpus_dir):
    asr_texts = [r["text"] for r in _all(corpus_dir, ASR)]  # far included
    assert len(set(asr_texts)) == len(asr_texts), "an ASR sentence is spoken twice"
    train_tts = {r["text"] for r in _rows(corpus_dir, "tts_train")}
    assert not train_tts & {r["text"] for r in _rows(corpus_dir, "tts_test")}
    words = set()
    for row in _all(corpus_dir):
        assert set(row["text"]) <= set(ALPHABET), row["text"]
        assert row["text"] == " ".join(row["text"].split()), row["text"]
        words.update(row["text"].split())
    assert len(words) >= 150
    assert words <= set(vocabulary())


def test_word_timings_monotonic_and_inside(corpus_dir):
    for row in _all(corpus_dir):
        words = row["words"]
        assert [w for w, _, _ in words] == row["text"].split(), row["audio_filepath"]
        following = words[1:] + [["", 1e9, 0]]
        for (_, start, end), (_, next_start, _) in zip(words, following):
            assert 0.0 <= start <= end <= min(next_start, row["duration"] + 1e-3), row


def test_tts_set_is_one_voice_over_15_minutes(corpus_dir):
    train, test = _rows(corpus_dir, "tts_train"), _rows(corpus_dir, "tts_test")
    assert len({r["speaker"] for r in train + test}) == 1
    assert sum(r["duration"] for r in train) >= 15 * 60
    asr_speakers = {r["speaker"] for r in _all(corpus_dir, ASR)}
    assert not {r["speaker"] for r in train} & asr_speakers


def test_readme_records_engine_and_command(corpus_dir):
    readme = (corpus_dir / "README.md").read_text()
    assert "python -m minispeech.data.corpus build --out data/tinyspeech" in readme
    assert "libespeak-ng **1." in readme
    for text in ("| accent |", "far.jsonl", "free-order share", "| babble |"):
        assert text in readme, text


def test_opus_seek_matches_full_decode(corpus_dir):
    path = corpus_dir / _rows(corpus_dir, "test")[0]["audio_filepath"]
    full, _ = sf.read(str(path), dtype="float32")
    part, _ = sf.read(str(path), start=8000, frames=4000, dtype="float32")
    np.testing.assert_allclose(part, full[8000:12000], atol=1e-3)


def _band_share(wave: np.ndarray, lo: float, hi: float) -> float:
    power = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / 16000)
    return float(power[(freqs >= lo) & (freqs < hi)].sum() / power.sum())


def test_opus_level_lowers_the_bitrate_and_keeps_the_band(corpus_dir):
    """--opus-level 0.97 (the knob for a bigger corpus in the same bytes): at most
    70% of the default's bytes, the same samples count, and the 4-8 kHz band's share
    of the energy within 30% of the default's."""
    rows = _rows(corpus_dir, "train")[:8]
    waves = [sf.read(str(corpus_dir / r["audio_filepath"]), dtype="float32")[0]
             for r in rows]  # fmt: skip
    sizes, shares = {}, {}
    for level in (None, 0.97):
        sizes[level], shares[level] = 0, []
        for k, wave in enumerate(waves):
            data = encode_opus(wave, 16000, serial=k, level=level)
            decoded, rate = sf.read(io.BytesIO(data), dtype="float32")
            assert rate == 16000 and len(decoded) == len(wave)
            sizes[level] += len(data)
            shares[level].append(_band_share(decoded, 4000, 8000))
    assert sizes[0.97] <= 0.7 * sizes[None], sizes
    ratio = np.mean(shares[0.97]) / np.mean(shares[None])
    assert 0.7 <= ratio <= 1.3, ratio


def test_opus_level_option_checked_and_recorded():
    from minispeech.data.corpus import _command, _parser

    with pytest.raises(SystemExit):
        _parser().parse_args(["build", "--out", "x", "--opus-level", "1.5"])
    args = _parser().parse_args(["build", "--out", "x", "--opus-level", "0.97"])
    assert args.opus_level == 0.97
    assert _command(args).endswith("--opus-level 0.97")


# ---------------------------------------------------------------- text
def test_number_words_hand_worked():
    cases = {
        0: "zero", 7: "seven", 13: "thirteen", 20: "twenty", 42: "forty two",
        99: "ninety nine", 305: "three hundred five", 640: "six hundred forty",
    }  # fmt: skip
    for n, text in cases.items():
        assert number_words(n) == text
    with pytest.raises(ValueError):
        number_words(1000)


def test_sentences_use_only_the_vocabulary():
    rng, vocab = random.Random(3), set(vocabulary())
    for _ in range(3000):
        text = sentence(rng)
        assert set(text.split()) <= vocab and set(text) <= set(ALPHABET), text


# ---------------------------------------------------------------- audio helpers
def test_speech_bounds_on_tone_between_silences():
    sr = 16000
    x = np.zeros(sr)
    x[4000:12000] = 0.5 * np.sin(2 * np.pi * 300 * np.arange(8000) / sr)
    start, end = speech_bounds(x, sr, margin=0.01)
    assert start == 4000 - 160 and end == 12000 + 160


def test_align_words_splits_a_merged_clitic_by_letters():
    text = "send of a man"  # "a" has no event: merged into "of"
    spans = {w: first for w, first, _ in word_spans(text)}
    events = [WordEvent(spans["send"], 4, 0), WordEvent(spans["of"], 2, 1000),
              WordEvent(spans["man"], 3, 1600)]  # fmt: skip
    x = np.ones(2400)
    words = align_words(text, events, x, (0, 2400), 16000)
    assert [w for w, _, _ in words] == ["send", "of", "a", "man"]
    # "of" (2 letters) and "a" (1 letter) share [1000, 1600): 400 + 200 samples
    assert words[1][1:] == (1000, 1400) and words[2][1:] == (1400, 1600)
    assert words[3][1:] == (1600, 2400)


def test_align_words_pulls_ends_back_over_silence():
    x = np.ones(3200)
    x[1000:1650] = 0.0  # a pause before the second word, which starts at 1650
    events = [WordEvent(0, 3, 0), WordEvent(4, 3, 1650)]
    words = align_words("one two", events, x, (0, 3200), 16000)
    # steps of 10 ms (160 samples) back from 1650 while the window is silent
    assert words[0][1:] == (0, 1010) and words[1][1:] == (1650, 3200)


def _crc_reference(data: bytes) -> int:
    """Bit by bit, straight from RFC 3533's description (poly 0x04c11db7)."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            top = crc & 0x80000000
            crc = (crc << 1) & 0xFFFFFFFF
            crc = crc ^ 0x04C11DB7 if top else crc
    return crc


def test_ogg_serial_rewrite_keeps_valid_checksums(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.standard_normal(3000).astype(np.float32).tobytes()
    assert ogg_crc(data) == _crc_reference(data)
    wave = 0.1 * rng.standard_normal(20000).astype(np.float32)
    sf.write(tmp_path / "a.opus", wave, 16000, format="OGG", subtype="OPUS")
    original = (tmp_path / "a.opus").read_bytes()
    serial = struct.unpack("<I", original[14:18])[0]
    assert set_ogg_serial(original, serial) == original  # libogg's own checksums
    fixed = set_ogg_serial(original, 1234)
    (tmp_path / "b.opus").write_bytes(fixed)
    a, _ = sf.read(tmp_path / "a.opus")
    b, _ = sf.read(tmp_path / "b.opus")
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- generator
def test_engine_is_deterministic_whatever_came_before():
    from minispeech.data.espeak import Voice, get_engine

    engine = get_engine()
    voice = Voice("gmw/en-US+m3", rate=170, pitch=40, range=60)
    first = engine.synthesize("turn on the kitchen lights", voice)
    other = Voice("gmw/en-US+Andrea", 150, 70, 20)  # its stressLength used to leak
    engine.synthesize("the meeting is on friday", other)
    again = engine.synthesize("turn on the kitchen lights", voice)
    assert first.samples.tobytes() == again.samples.tobytes()
    assert first.sample_rate == 22050 and len(first.samples) > 22050 // 2
    assert [e.sample for e in first.words] == sorted(e.sample for e in first.words)
    assert engine.version.startswith("1.")


_FRESH = """
import hashlib
from minispeech.data.espeak import Voice, get_engine
voice = Voice("gmw/en-US+f2", rate=160, pitch=45, range=55)  # breath noise: random
samples = get_engine().synthesize("call kate at nine", voice).samples
print(hashlib.sha1(samples).hexdigest())
"""


def test_engine_same_bytes_in_a_fresh_process():
    import hashlib
    import subprocess
    import sys

    from minispeech.data.espeak import Voice, get_engine

    voice = Voice("gmw/en-US+f2", rate=160, pitch=45, range=55)
    here = get_engine().synthesize("call kate at nine", voice).samples
    fresh = subprocess.run(
        [sys.executable, "-c", _FRESH], capture_output=True, text=True, check=True
    )
    assert fresh.stdout.strip() == hashlib.sha1(here).hexdigest()


def test_build_corpus_small_is_byte_deterministic(tmp_path):
    from minispeech.data.corpus import SPEAKERS, CorpusSizes, build_corpus

    first = {split: [s for s in SPEAKERS if s.split == split] for split in ASR}
    speakers = [first["train"][0], first["dev"][0], first["test"][0]]
    speakers += first["far"][:2] + [SPEAKERS[-1]]  # far: 2 speakers for babble
    sizes = CorpusSizes(
        train_per_speaker=2,
        heldout_per_speaker=1,
        far_per_speaker=5,  # conditions 0-4 and 1-5: clean, white and pink
        free_fraction=0.5,
        tts_train_seconds=2.0,
        tts_test_utterances=1,
        tts_chunk=2,
    )
    runs = []
    for name in ("a", "b"):
        splits = build_corpus(tmp_path / name, seed=7, sizes=sizes, speakers=speakers)
        files = sorted((tmp_path / name).rglob("*.opus"))
        runs.append({f.relative_to(tmp_path / name): f.read_bytes() for f in files})
    assert runs[0] == runs[1] and len(runs[0]) == 2 + 1 + 1 + 10 + 2
    names = ("train", "dev", "test", "far", "tts_train", "tts_test")
    assert [len(splits[n]) for n in names] == [2, 1, 1, 10, 1, 1]
    assert sorted(r["kind"] for r in splits["train"]) == ["free", "template"]
    assert {r["noise"] for r in splits["far"]} == {"clean", "white", "pink"}
    for row in splits["train"] + splits["test"] + splits["far"]:
        info = sf.info(str(tmp_path / "b" / row["audio_filepath"]))
        assert info.frames / 16000 == row["duration"] and row["duration"] > 0.5
    # --opus-level reaches every split's files (ASR, far, TTS): same files and
    # lengths, fewer bytes in all
    smaller = dataclasses.replace(sizes, opus_level=0.97)
    build_corpus(tmp_path / "c", seed=7, sizes=smaller, speakers=speakers)
    files = {f.relative_to(tmp_path / "c"): f for f in (tmp_path / "c").rglob("*.opus")}
    assert sorted(files) == sorted(runs[0])
    for name, path in files.items():
        assert sf.info(str(path)).frames == sf.info(str(tmp_path / "a" / name)).frames
        assert path.stat().st_size < len(runs[0][name]), name
