"""From synthesizer output to a corpus file: word intervals, silence trimming, Ogg Opus.

Word intervals come from espeak-ng's WORD events (start of each word). A word's end is
the next word's start, pulled back over any silence before it; the last word ends at the
end of the speech. espeak-ng sometimes merges a clitic ("the", "a", the "s" of "it's")
into a neighbouring word and emits no WORD event for it; such a word shares the
interval of the preceding evented word, split between them in proportion to their
letter counts (event-less words before the first event share the time before it).

Ogg Opus files written by libsndfile carry a random stream serial number, so two
identical encodes differ in 4 bytes and every page checksum. `set_ogg_serial` rewrites
the serial and the checksums (Ogg framing: RFC 3533, section 6: CRC-32 with polynomial
0x04c11db7, initial value 0, no reflection, computed over the page with its CRC field
zeroed) so that the corpus is byte-for-byte reproducible.
"""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from minispeech.data.written_form import written_form

SAMPLE_RATE = 16000  # every corpus file: 16 kHz mono


def speech_bounds(
    samples: np.ndarray, sample_rate: int, threshold_db: float = -45.0,
    margin: float = 0.03, frame: float = 0.01,
) -> tuple[int, int]:  # fmt: skip
    """[start, end) of the speech: frames louder than `threshold_db` below the loudest
    frame, widened by `margin` seconds on each side. All-silent input gives (0, 0)."""
    hop = max(1, int(round(frame * sample_rate)))
    energy = _frame_energy_db(samples, hop)  # (T,)
    if energy.size == 0 or not np.isfinite(energy.max()):
        return 0, 0
    loud = np.nonzero(energy > energy.max() + threshold_db)[0]
    pad = int(round(margin * sample_rate))
    start = max(0, loud[0] * hop - pad)
    end = min(len(samples), (loud[-1] + 1) * hop + pad)
    return int(start), int(end)


def _frame_energy_db(samples: np.ndarray, hop: int) -> np.ndarray:
    """Mean power per non-overlapping frame of `hop` samples, dB (-inf: silence)."""
    x = np.asarray(samples, dtype=np.float64)
    n_frames = -(-len(x) // hop)
    padded = np.zeros(n_frames * hop)
    padded[: len(x)] = x
    power = (padded.reshape(n_frames, hop) ** 2).mean(axis=1)  # (T,)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(power)


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """(word, first char, end char) for each space-separated word of `text`."""
    spans, pos = [], 0
    for word in text.split(" "):
        spans.append((word, pos, pos + len(word)))
        pos += len(word) + 1
    return spans


def word_starts(text: str, events: list) -> list:
    """Map WORD events to the words of `text`: the start sample of each word, or None
    for a word the engine merged into a neighbour (no event starts inside it)."""
    spans = word_spans(text)
    starts = [None] * len(spans)
    for event in events:
        for i, (_, first, end) in enumerate(spans):
            if first <= event.text_position < end and starts[i] is None:
                starts[i] = event.sample
    return starts


def align_words(
    text: str, events: list, samples: np.ndarray, speech: tuple[int, int],
    sample_rate: int, silence_db: float = -45.0,
) -> list[tuple[str, int, int]]:  # fmt: skip
    """(word, start, end) in samples of `samples` for every word of `text`.

    `speech` = (first, end) sample of the trimmed utterance: intervals are clipped
    to it. Word ends are pulled back over trailing silence (frames quieter than
    `silence_db` relative to the loudest frame).
    """
    words = [w for w, _, _ in word_spans(text)]
    starts = _fill_merged(words, word_starts(text, events), speech)
    bounds = [max(speech[0], min(s, speech[1])) for s in starts] + [speech[1]]
    hop = max(1, sample_rate // 100)  # 10 ms
    x = np.asarray(samples, dtype=np.float64)
    floor = 10.0 ** ((_frame_energy_db(x, hop).max() + silence_db) / 10.0)  # power
    out = []
    for i, word in enumerate(words):
        start, end = bounds[i], max(bounds[i], bounds[i + 1])
        # pull the end back over silent 10 ms windows (a pause before the next word)
        while end - hop >= start and np.mean(x[end - hop : end] ** 2) < floor:
            end -= hop
        out.append((word, start, end))
    return out


def _fill_merged(words: list[str], starts: list, speech: tuple[int, int]) -> list[int]:
    """Give words without an event a start: each evented word owns the event-less
    words after it and its interval is split among them in proportion to letter
    counts; event-less words before the first event share [speech start, that event)."""
    evented = [k for k, s in enumerate(starts) if s is not None]
    cuts = sorted({0, *evented, len(words)})
    groups = [list(range(cuts[g], cuts[g + 1])) for g in range(len(cuts) - 1)]
    filled = list(starts)
    for g, group in enumerate(groups):
        lo = speech[0] if starts[group[0]] is None else starts[group[0]]
        hi = starts[groups[g + 1][0]] if g + 1 < len(groups) else speech[1]
        _split(filled, words, group, lo, max(hi, lo))
    return [int(s) for s in filled]


def _split(filled: list, words: list[str], group: list[int], lo: int, hi: int) -> None:
    """Share [lo, hi) among the words in `group` in proportion to their letters."""
    if len(group) == 1:
        filled[group[0]] = lo
        return
    letters = np.array([len(words[k]) for k in group], dtype=np.float64)
    fraction = np.concatenate([[0.0], np.cumsum(letters)[:-1]]) / letters.sum()
    for k, f in zip(group, fraction):
        filled[k] = int(round(lo + (hi - lo) * f))


def encode_opus(
    wave: np.ndarray, sample_rate: int, serial: int, level: float | None = None
) -> bytes:
    """Ogg Opus bytes of a mono float wave, with a fixed stream serial number.

    `level`: libsndfile's compression level in [0, 1], which sets the bitrate (None:
    its default, ~30 kbps on this speech; 0.97: ~18.5 kbps with the 4-8 kHz band kept;
    1.0: ~12 kbps, which drops most of 4-6 kHz)."""
    buffer = io.BytesIO()
    options = {} if level is None else {"compression_level": float(level)}
    sf.write(buffer, wave, sample_rate, format="OGG", subtype="OPUS", **options)
    return set_ogg_serial(buffer.getvalue(), serial)


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        r = byte << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def ogg_crc(data: bytes) -> int:
    """Ogg page checksum (RFC 3533): CRC-32, poly 0x04c11db7, init 0, unreflected."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def set_ogg_serial(data: bytes, serial: int) -> bytes:
    """Rewrite the stream serial number of every Ogg page and fix its checksum."""
    out, pos = bytearray(data), 0
    while pos < len(out):
        if out[pos : pos + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {pos}")
        n_segments = out[pos + 26]
        end = pos + 27 + n_segments + sum(out[pos + 27 : pos + 27 + n_segments])
        out[pos + 14 : pos + 18] = struct.pack("<I", serial & 0xFFFFFFFF)
        out[pos + 22 : pos + 26] = b"\0\0\0\0"
        out[pos + 22 : pos + 26] = struct.pack("<I", ogg_crc(bytes(out[pos:end])))
        pos = end
    return bytes(out)


def manifest_row(relative: str, wave: np.ndarray, text: str, speaker,
                 kind: str, words: list) -> dict:  # fmt: skip
    return {
        "audio_filepath": relative,
        "duration": len(wave) / SAMPLE_RATE,
        "text": text,
        "text_pnc": written_form(text),  # written form: "Call Bob at 7:30."
        "speaker": speaker.id,
        "gender": speaker.gender,
        "accent": speaker.accent,
        "kind": kind,
        "words": words,
    }


def write_opus(
    out_dir: Path, relative: str, wave: np.ndarray, utt_id: str, level=None
) -> None:
    path = out_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    serial = zlib.crc32(utt_id.encode())
    path.write_bytes(encode_opus(wave, SAMPLE_RATE, serial, level))
