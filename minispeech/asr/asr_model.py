"""ASRModel: what every speech recognizer shares, whatever its output head.

A batch flows  audio (B, S) -> MelSpectrogram -> feats (B, M, T)
-> SpecAugment (training
only) -> encoder -> enc (B, D, T').  The subclasses add the head and its loss: CTCModel
(`ctc_model.py`) a linear layer and CTC;
TransducerModel a prediction and a joint network.

The vocabulary is either a list of characters in the config (`labels:`, NeMo's char
models) or a tokenizer folder (`tokenizer: {dir: ...}`, stored in the model file as an
artifact). Token ids are 0..V-2 and the blank is the LAST index V-1, as in NeMo, so
NeMo's weights import without reordering.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from minispeech.asr.config_sections import (
    ASR_KEYS,
    TOKENIZER_KEYS,
    WARP_LAYOUT,
    check_sections,
    get_section,
)
from minispeech.audio import AudioAugmentor, MelSpectrogram, SpecAugment
from minispeech.audio.freq_warp import FrequencyWarp
from minispeech.core.config import ConfigError, check_keys, locate
from minispeech.core.model import SpeechModel
from minispeech.data import (
    AudioTextDataset,
    CharTokenizer,
    SentencePieceTokenizer,
    collate_audio_text,
    load_tokenizer,
)
from minispeech.data.datasets import DATASET_KEYS
from minispeech.metrics.wer import char_errors, word_errors
from minispeech.nn.freeze import freeze


class ASRModel(SpeechModel):
    """Tokenizer, preprocessor, SpecAugment and encoder; data, WER and transcription."""

    extra_keys: frozenset = frozenset()  # a subclass's own config keys

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.check_config()
        self.tokenizer = self._build_tokenizer()
        pre_cfg = self.section("preprocessor")
        pre_cfg.setdefault("sample_rate", self.cfg.get("sample_rate", 16000))
        self.preprocessor = MelSpectrogram(**pre_cfg)
        self.sample_rate = int(pre_cfg["sample_rate"])
        aug_cfg = self.section("spec_augment")
        self.spec_augment = SpecAugment(**aug_cfg) if aug_cfg else None
        self.freq_warp = None
        if self.cfg.get("freq_warp"):  # VTLP, in the preprocessor's mel layout
            layout = {k: pre_cfg[k] for k in WARP_LAYOUT[1:] if k in pre_cfg}
            self.freq_warp = FrequencyWarp(
                self.sample_rate, **layout, **self.section("freq_warp")
            )
        self.encoder = locate(self.cfg["encoder"]["_target_"])(
            **self.section("encoder")
        )

    # ------------------------------------------------------------ config sections
    def config_sections(self) -> dict:
        """Section -> (class or key names, fixed arguments, required keys): what
        `check_config` checks. A subclass adds its own sections."""
        sections = {
            "tokenizer": (TOKENIZER_KEYS, (), ("dir",)),
            "preprocessor": (MelSpectrogram, (), ()),
            "spec_augment": (SpecAugment, (), ()),
            "freq_warp": (FrequencyWarp, WARP_LAYOUT, ()),
            "encoder": (locate(self.cfg["encoder"]["_target_"]), (), ()),
        }
        for name in ("train_ds", "validation_ds", "test_ds"):
            sections[name] = (DATASET_KEYS, (), ())
            sections[f"{name}.augmentor"] = (AudioAugmentor, (), ())
        return sections

    def check_config(self) -> None:
        """Check the keys of every section before anything is built (all sections
        that do not fit are reported together: `config_sections.check_sections`)."""
        name = type(self).__name__
        encoder = self.cfg.get("encoder")
        if not isinstance(encoder, dict) or "_target_" not in encoder:
            raise ConfigError(
                f"model.encoder: {name} needs an encoder section with a _target_ "
                "(e.g. minispeech.nn.ConformerEncoder)"
            )
        keys = ASR_KEYS | set(self.extra_keys)
        check_sections(name, self.cfg, keys, self.config_sections())

    def freeze_from_config(self) -> list[str]:
        """`freeze: [patterns]` (nn/freeze.py): the matched parameters stop training.
        A subclass that takes the key calls this once its modules are all built."""
        try:
            return freeze(self, self.cfg.get("freeze") or [])
        except (ValueError, TypeError) as error:
            raise ConfigError(f"model.freeze: {error}") from None

    def section(self, dotted: str) -> dict:
        """A checked config section's values (a copy; {} when absent)."""
        return dict(get_section(self.cfg, dotted))

    def _build_tokenizer(self):
        """`labels: [...]` -> CharTokenizer;
        `tokenizer: {dir: ...}` -> the saved tokenizer."""
        if "labels" in self.cfg and "tokenizer" in self.cfg:
            raise ConfigError("give either model.labels or model.tokenizer, not both")
        if "labels" in self.cfg:
            return CharTokenizer(self.cfg["labels"])
        if "tokenizer" in self.cfg:
            self._train_tokenizer_if_missing(self.cfg["tokenizer"])
            return load_tokenizer(self.register_artifact("tokenizer.dir"))
        raise ConfigError(
            "the model config needs labels: [...] or tokenizer: {dir: ...}"
        )

    @staticmethod
    def _train_tokenizer_if_missing(tok_cfg: dict) -> None:
        """`tokenizer: {dir, type: bpe|unigram, vocab_size, train_manifest}`: when `dir`
        holds no tokenizer yet, train a SentencePiece model there from the manifest's
        texts (deterministic), so a recipe needs no separate tokenizer step."""
        # its keys were checked by check_config (TOKENIZER_KEYS, dir required)
        tok_dir = Path(str(tok_cfg["dir"]))
        if str(tok_cfg["dir"]).startswith("nemo:") or any(
            (tok_dir / name).is_file() for name in ("tokenizer.model", "vocab.txt")
        ):
            return
        if "train_manifest" not in tok_cfg:
            raise ConfigError(
                f"model.tokenizer.dir {tok_dir} has no tokenizer "
                "and no train_manifest to build one"
            )
        from minispeech.data import read_manifest

        texts = [
            row["text"]
            for row in read_manifest(
                tok_cfg["train_manifest"], required=("text",), check_audio=False
            )
        ]
        SentencePieceTokenizer.train(
            texts,
            tok_dir,
            int(tok_cfg.get("vocab_size", 128)),
            tok_cfg.get("type", "bpe"),
        )

    @property
    def blank(self) -> int:
        """The blank index: last, after the tokenizer's vocabulary
        (NeMo's convention)."""
        return self.tokenizer.vocab_size

    @property
    def num_classes(self) -> int:
        """V: the tokenizer's tokens plus the blank."""
        return self.tokenizer.vocab_size + 1

    @property
    def frame_shift(self) -> int:
        """Samples per encoder output frame: the feature hop times the subsampling."""
        enc = self.cfg["encoder"]
        factor = (
            int(enc.get("subsampling_factor", 4)) if enc.get("subsampling", True) else 1
        )
        return self.preprocessor.hop_length * factor

    # ------------------------------------------------------------ the front end
    def encode(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """audio (B, S), audio_lens (B,) -> enc (B, D, T'), enc_lens (B,)."""
        assert audio.dim() == 2, f"audio must be (B, S), got {tuple(audio.shape)}"
        feats, feat_lens = self.preprocessor(audio, audio_lens)  # (B, M, T)
        if self.training and self.freq_warp is not None:
            feats = self.freq_warp(feats)  # (B, M, T)
        if self.training and self.spec_augment is not None:
            feats = self.spec_augment(feats, feat_lens)  # (B, M, T)
        if not self.training:
            # frames past the longest item are padding (pad_to rounding, shorter
            # items); the encoder masks padding, so its valid outputs do not depend
            # on them. Inference drops them: fewer frames, and no masks at all when
            # every item has the full length (batch 1)
            feats = feats[..., : int(feat_lens.max())]  # (B, M, max T)
        return self.encoder(feats, feat_lens)  # (B, D, T')

    def encode_long(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Like `encode`, but inputs longer than `chunk.length` seconds (default 30)
        are encoded in overlapping windows whose frames are stitched together, so
        memory stays bounded by the window: -> enc (B, D, T'), enc_lens (B,)."""
        chunk = self.cfg.get("chunk") or {}
        length_s = float(chunk.get("length", 30.0))
        # ASRModel's encode, (B, D, T'), even where a subclass's encode returns
        # another layout (AEDModel: projected, batch first)
        if audio.shape[1] <= length_s * self.sample_rate:
            return ASRModel.encode(self, audio, audio_lens)
        overlap_s = float(chunk.get("overlap", 2.0))
        items = [
            self.chunked_encode(audio[b, : audio_lens[b]], length_s, overlap_s)
            for b in range(audio.shape[0])
        ]  # each (D, T'_b)
        lens = torch.tensor([x.shape[1] for x in items], device=audio.device)
        out = items[0].new_zeros(len(items), items[0].shape[0], int(lens.max()))
        for b, item in enumerate(items):
            out[b, :, : item.shape[1]] = item
        return out, lens  # (B, D, T')

    def chunked_encode(self, wave: Tensor, length_s: float, overlap_s: float) -> Tensor:
        """wave (S,) -> enc (D, T') from overlapping windows of `length_s` seconds.

        Frame k of a window starting at sample s0 sits at sample s0 + k * stride. Each
        window keeps only the frames between the midpoints of its overlaps, so every
        output frame saw at least overlap/2 seconds of context on each side.
        """
        stride = self.frame_shift
        size = int(length_s * self.sample_rate) // stride * stride
        step = int((length_s - overlap_s) * self.sample_rate) // stride * stride
        if not 0 < step <= size:
            raise ConfigError(
                f"model.chunk: overlap {overlap_s} s must be below length {length_s} s"
            )
        half, n, pieces = (size - step) // 2 // stride * stride, wave.numel(), []
        for start in range(0, n, step):
            window = wave[start : start + size]
            lens = torch.tensor([window.numel()], device=wave.device)
            enc, enc_lens = ASRModel.encode(self, window[None], lens)  # (1, D, T'_w)
            frames = enc[0, :, : int(enc_lens[0])]  # (D, T'_w)
            last = start + size >= n
            lo = 0 if start == 0 else half // stride
            hi = frames.shape[1] if last else (step + half) // stride
            pieces.append(frames[:, lo:hi])
            if last:
                break
        return torch.cat(pieces, dim=1)  # (D, T')

    # ------------------------------------------------------------ data
    def build_dataset(self, ds_cfg: dict) -> AudioTextDataset:
        """An AudioTextDataset for one `train_ds` / `validation_ds` / `test_ds`
        section."""
        check_keys(
            "dataset section",
            ds_cfg,
            sorted(DATASET_KEYS),
            required=("manifest_filepath",),
        )
        return AudioTextDataset(
            ds_cfg["manifest_filepath"],
            tokenizer=self.tokenizer,
            sample_rate=self.sample_rate,
            min_duration=ds_cfg.get("min_duration"),
            max_duration=ds_cfg.get("max_duration"),
            cache_audio=ds_cfg.get("cache_audio", False),
            augmentor=self._augmentor(ds_cfg.get("augmentor")),
        )

    def _augmentor(self, aug_cfg: dict | None) -> AudioAugmentor | None:
        if not aug_cfg:
            return None
        return AudioAugmentor(**{"sample_rate": self.sample_rate, **aug_cfg})

    def collate(self, items: list) -> dict:
        return collate_audio_text(items)

    # ------------------------------------------------------------ validation
    def decode(self, audio: Tensor, audio_lens: Tensor) -> list[str]:
        """Greedy transcripts of a batch (the subclass's decoder)."""
        raise NotImplementedError(f"{type(self).__name__} must define decode")

    # the loss of an utterance longer than this is not computed: its full T' x U'
    # trellis would not fit in memory (an hour: 90,000 frames x 100,000 states)
    max_loss_seconds = 60.0

    def validation_step(self, batch: dict) -> dict:
        """Summed loss and word/char error counts of one batch. The loss covers the
        utterances up to `max_loss_seconds` (`loss_count` of them); the error counts
        cover every utterance, long ones decoded by the model's own long-input path."""
        short = batch["audio_lens"] <= self.max_loss_seconds * self.sample_rate  # (B,)
        loss_sum, loss_count = 0.0, int(short.sum())
        if loss_count:
            sub = batch if bool(short.all()) else select_items(batch, short)
            loss_sum = float(self.training_step(sub)["loss"]) * loss_count
        hyps = self.decode(batch["audio"], batch["audio_lens"])
        words = word_errors(batch["texts"], hyps)
        chars = char_errors(batch["texts"], hyps)  # spaces count, as metrics.cer
        return {
            "loss_sum": loss_sum,
            "loss_count": loss_count,
            "count": len(hyps),
            "word_errors": words.errors,
            "words": words.ref_len,
            "char_errors": chars.errors,
            "chars": chars.ref_len,
        }

    def validation_metrics(self, stats: dict) -> dict:
        """val_loss (mean over the utterances it covers), val_wer and val_cer (corpus
        level: the same numbers as metrics.wer and metrics.cer on the same hypotheses).
        """
        loss_count = stats.get("loss_count", stats["count"])
        return {
            "val_loss": stats["loss_sum"] / loss_count if loss_count else math.nan,
            "val_wer": stats["word_errors"] / max(stats["words"], 1),
            "val_cer": stats["char_errors"] / max(stats["chars"], 1),
        }

    # ------------------------------------------------------------ inference
    @torch.inference_mode()
    def transcribe(self, inputs: Sequence, batch_size: int = 8) -> list[str]:
        """Transcribe audio files or waveforms (S,), `batch_size` at a time,
        in order."""
        was_training = self.training
        self.eval()
        waves, texts = self.load_inputs(inputs), []
        device = next(self.parameters()).device
        for start in range(0, len(waves), batch_size):
            audio, audio_lens = pad_waves(waves[start : start + batch_size])  # (B, S)
            texts += self.decode(audio.to(device), audio_lens.to(device))
        self.train(was_training)
        return texts


def select_items(batch: dict, keep: Tensor) -> dict:
    """The items of a batch where `keep` (B,) is True: tensors and lists indexed along
    their first (batch) dimension, padded tensors trimmed to the longest kept item."""
    index = keep.nonzero().flatten().tolist()
    out = {}
    for key, value in batch.items():
        if isinstance(value, Tensor) and value.ndim > 0:
            out[key] = value[keep]
        elif isinstance(value, (list, tuple)):
            out[key] = [value[i] for i in index]
        else:
            out[key] = value
    out["audio"] = out["audio"][:, : int(out["audio_lens"].max())]  # (B_kept, S)
    return out


def pad_waves(waves: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """A list of (S_b,) waveforms -> zero-padded (B, S) and lengths (B,)."""
    audio_lens = torch.tensor([w.numel() for w in waves])  # (B,)
    audio = torch.zeros(len(waves), int(audio_lens.max()))  # (B, S)
    for b, wave in enumerate(waves):
        audio[b, : wave.numel()] = wave
    return audio, audio_lens
