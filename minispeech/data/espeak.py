"""A ctypes wrapper around libespeak-ng: synthesized samples plus per-word start times.

espeak-ng is a formant synthesizer (Klatt-style, after Dennis Klatt's 1980
cascade/parallel synthesizer, JASA 67(3)). Its C API (`speak_lib.h`) is driven in
synchronous mode: every `espeak_Synth` call runs to completion and hands audio and
events to one callback. The events carry `text_position` (1-based character offset of
the word in the input) and `sample` (the position of the event in the output audio),
which give word start times.

The library and its voice data come from the PyPI package `espeakng-loader` (only needed
to BUILD the corpus, never to use it). The library is a process-wide singleton, so one
`EspeakEngine` per process is enough; the module keeps one in `get_engine()`.

Determinism: the same text, voice and parameters give the same samples within one engine
version (tested); different versions give different bytes, so the corpus records the
version (`EspeakEngine.version`).
"""

import ctypes
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# speak_lib.h constants
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
POS_CHARACTER = 1
CHARS_UTF8 = 1
PARAM_RATE = 1  # words per minute (CLI -s)
PARAM_VOLUME = 2  # amplitude (CLI -a)
PARAM_PITCH = 3  # base pitch 0-99 (CLI -p)
PARAM_RANGE = 4  # pitch range 0-99 (0 = monotone)
PARAM_WORDGAP = 7  # extra pause between words in units of 10 ms (CLI -g)


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    """`espeak_EVENT` from speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # samples at the engine's rate
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class EspeakError(RuntimeError):
    """The espeak-ng library is missing or refused a call."""


@dataclass(frozen=True)
class Voice:
    """How one synthetic speaker sounds; fields map to espeak-ng parameters."""

    name: str  # full identifier: language + variant, e.g. "gmw/en-US+m3"
    rate: int = 175  # words per minute (-s)
    pitch: int = 50  # base pitch 0-99 (-p)
    range: int = 50  # pitch range 0-99: how much intonation moves F0


@dataclass(frozen=True)
class WordEvent:
    """A WORD event: where in the input text a word starts and when it is spoken."""

    text_position: int  # 0-based character offset into the synthesized text
    length: int  # characters the engine counted for this word
    sample: int  # output sample at which the word starts


@dataclass(frozen=True)
class Synthesis:
    """One synthesized utterance at the engine's native rate."""

    samples: np.ndarray  # int16 (S,)
    sample_rate: int  # 22050 for espeak-ng
    words: list  # list[WordEvent], in time order


class EspeakEngine:
    """Load libespeak-ng through ctypes and synthesize text with word events."""

    def __init__(self, library_path: str | None = None, data_path: str | None = None):
        if library_path is None or data_path is None:
            try:
                import espeakng_loader
            except ImportError as err:
                raise EspeakError(
                    "building the corpus needs espeak-ng: pip install espeakng-loader"
                ) from err
            library_path = library_path or espeakng_loader.get_library_path()
            data_path = data_path or espeakng_loader.get_data_path()
        if not Path(data_path).is_dir():
            raise EspeakError(f"espeak-ng data folder not found: {data_path}")
        self._lib = ctypes.CDLL(library_path)
        self._declare()
        options = INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT
        rate = self._lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path).encode(), options
        )
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate}), data {data_path}")
        self.sample_rate = int(rate)
        # ctypes frees a callback object that nobody references: keep it on self.
        self._callback = _CALLBACK(self._on_synth)
        self._lib.espeak_SetSynthCallback(self._callback)
        self._chunks: list[np.ndarray] = []
        self._events: list[WordEvent] = []

    def _declare(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int
        ]  # fmt: skip
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p

    @property
    def version(self) -> str:
        """The library's version string, e.g. '1.52.0'."""
        return self._lib.espeak_Info(None).decode()

    def _on_synth(self, wav, n_samples, events) -> int:
        if n_samples > 0 and wav:
            chunk = np.ctypeslib.as_array(wav, shape=(n_samples,))
            self._chunks.append(chunk.astype(np.int16, copy=True))
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == EVENT_WORD:
                # text_position is 1-based in characters of the input
                event = WordEvent(ev.text_position - 1, ev.length, ev.sample)
                self._events.append(event)
            i += 1
        return 0  # 0 = keep synthesizing

    def set_voice(self, voice: Voice) -> None:
        """Select the voice, then the prosody (a voice change resets it)."""
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {voice.name!r}")
        for param, value in (
            (PARAM_RATE, voice.rate),
            (PARAM_PITCH, voice.pitch),
            (PARAM_RANGE, voice.range),
            (PARAM_VOLUME, 100),
            (PARAM_WORDGAP, 0),
        ):
            if self._lib.espeak_SetParameter(param, int(value), 0) != 0:
                raise EspeakError(f"espeak_SetParameter({param}, {value}) failed")

    def synthesize(self, text: str, voice: Voice) -> Synthesis:
        """Speak `text` with `voice`, starting from the engine's initial state.

        libespeak-ng carries state from one call to the next: the flutter phase of
        the pitch, the random generators of its noise sources (libc's rand() and its
        own, which it seeds from the clock: both are seeded here), and voice settings
        that a later voice does not reset (a variant's `stressLength` leaks into the
        next variant and makes it speak twice as fast). So the parent process never
        selects a voice or speaks: each utterance is synthesized in a forked child
        that starts from the state right after `espeak_Initialize`. Without fork
        (Windows) the call runs in-process and depends on the previous calls.
        """
        if not hasattr(os, "fork"):
            return self._synthesize_here(text, voice)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: synthesize, send the result, never return
            status = 1
            try:
                os.close(read_fd)
                ctypes.CDLL(None).srand(1)  # a fresh process's libc rand() state
                self._lib.espeak_ng_SetRandSeed(1)  # espeak seeds it from the clock
                payload = pickle.dumps(self._synthesize_here(text, voice))
                with os.fdopen(write_fd, "wb") as pipe:
                    pipe.write(payload)
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not payload:
            raise EspeakError(f"espeak-ng failed (wait status {status}) on {text!r}")
        return pickle.loads(payload)

    def _synthesize_here(self, text: str, voice: Voice) -> Synthesis:
        self.set_voice(voice)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        err = self._lib.espeak_Synth(
            data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None
        )
        if err != 0:
            raise EspeakError(f"espeak_Synth failed ({err}) on {text!r}")
        samples = np.concatenate(self._chunks or [np.zeros(0, np.int16)])  # (S,)
        words = sorted(self._events, key=lambda e: e.sample)
        return Synthesis(samples, self.sample_rate, words)


_ENGINE: EspeakEngine | None = None


def get_engine() -> EspeakEngine:
    """The process-wide engine (libespeak-ng keeps global state, so share one)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = EspeakEngine()
    return _ENGINE
