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

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from minispeech.audio import AudioAugmentor, MelSpectrogram, SpecAugment, load_audio
from minispeech.audio.freq_warp import FrequencyWarp
from minispeech.core.config import ConfigError, instantiate
from minispeech.core.model import SpeechModel
from minispeech.data import (
    AudioTextDataset,
    CharTokenizer,
    SentencePieceTokenizer,
    collate_audio_text,
    load_tokenizer,
)
from minispeech.metrics.wer import word_errors

# keys of the `model:` section every ASR model understands (subclasses add their own)
ASR_KEYS = {
    "_target_",
    "sample_rate",
    "labels",
    "tokenizer",
    "preprocessor",
    "spec_augment",
    "freq_warp",
    "encoder",
    "train_ds",
    "validation_ds",
    "test_ds",
    "optim",
}
# keys of a train_ds / validation_ds / test_ds section (the loop reads the sampler ones)
DATASET_KEYS = {
    "manifest_filepath",
    "batch_size",
    "max_seconds",
    "shuffle",
    "drop_last",
    "num_buckets",
    "num_workers",
    "min_duration",
    "max_duration",
    "cache_audio",
    "augmentor",
}


class ASRModel(SpeechModel):
    """Tokenizer, preprocessor, SpecAugment and encoder; data, WER and transcription."""

    extra_keys: frozenset = frozenset()  # a subclass's own config keys

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        unknown = set(self.cfg) - ASR_KEYS - set(self.extra_keys)
        if unknown:
            valid = ", ".join(sorted(ASR_KEYS | set(self.extra_keys)))
            raise ConfigError(
                f"{type(self).__name__}: unknown model keys {sorted(unknown)}; "
                f"valid: {valid}"
            )
        self.tokenizer = self._build_tokenizer()
        pre_cfg = {
            k: v
            for k, v in (self.cfg.get("preprocessor") or {}).items()
            if k != "_target_"
        }
        pre_cfg.setdefault("sample_rate", self.cfg.get("sample_rate", 16000))
        self.preprocessor = MelSpectrogram(**pre_cfg)
        self.sample_rate = int(pre_cfg["sample_rate"])
        aug_cfg = {
            k: v
            for k, v in (self.cfg.get("spec_augment") or {}).items()
            if k != "_target_"
        }
        self.spec_augment = SpecAugment(**aug_cfg) if aug_cfg else None
        warp_cfg = self.cfg.get("freq_warp")
        self.freq_warp = None
        if warp_cfg:  # VTLP: the mel layout comes from the preprocessor
            layout = {
                k: pre_cfg[k]
                for k in ("features", "lowfreq", "highfreq")
                if k in pre_cfg
            }
            self.freq_warp = FrequencyWarp(self.sample_rate, **layout, **warp_cfg)
        if "encoder" not in self.cfg:
            raise ConfigError(
                f"{type(self).__name__}: the model config needs an encoder section"
            )
        self.encoder = instantiate(self.cfg["encoder"])

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
        valid = {"dir", "type", "vocab_size", "train_manifest"}
        if set(tok_cfg) - valid or "dir" not in tok_cfg:
            raise ConfigError(
                f"model.tokenizer: keys {sorted(tok_cfg)}; valid: {sorted(valid)} "
                "(dir required)"
            )
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
        return self.encoder(feats, feat_lens)  # (B, D, T')

    # ------------------------------------------------------------ data
    def build_dataset(self, ds_cfg: dict) -> AudioTextDataset:
        """An AudioTextDataset for one `train_ds` / `validation_ds` / `test_ds`
        section."""
        if "manifest_filepath" not in ds_cfg:
            raise ConfigError("a dataset section needs manifest_filepath")
        unknown = set(ds_cfg) - DATASET_KEYS
        if unknown:
            raise ConfigError(
                f"dataset section: unknown keys {sorted(unknown)}; "
                f"valid: {', '.join(sorted(DATASET_KEYS))}"
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

    def validation_step(self, batch: dict) -> dict:
        """Summed loss and word/char error counts of one batch."""
        loss = self.training_step(batch)["loss"]
        hyps = self.decode(batch["audio"], batch["audio_lens"])
        words = word_errors(batch["texts"], hyps)
        chars = word_errors(
            [" ".join(t) for t in batch["texts"]], [" ".join(h) for h in hyps]
        )
        n = len(hyps)
        return {
            "loss_sum": float(loss) * n,
            "count": n,
            "word_errors": words.errors,
            "words": words.ref_len,
            "char_errors": chars.errors,
            "chars": chars.ref_len,
        }

    def validation_metrics(self, stats: dict) -> dict:
        """val_loss (mean over utterances), val_wer and val_cer (corpus level)."""
        return {
            "val_loss": stats["loss_sum"] / max(stats["count"], 1),
            "val_wer": stats["word_errors"] / max(stats["words"], 1),
            "val_cer": stats["char_errors"] / max(stats["chars"], 1),
        }

    # ------------------------------------------------------------ inference
    def load_inputs(self, inputs: Sequence) -> list[Tensor]:
        """Paths or 1-D tensors -> mono waveforms at the model's sample rate."""
        waves = []
        for item in inputs:
            if isinstance(item, (str, Path)):
                item = load_audio(item, sample_rate=self.sample_rate)[0]
            item = torch.as_tensor(item, dtype=torch.float32)
            assert item.dim() == 1, f"a waveform must be (S,), got {tuple(item.shape)}"
            waves.append(item)
        return waves

    @torch.no_grad()
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


def pad_waves(waves: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """A list of (S_b,) waveforms -> zero-padded (B, S) and lengths (B,)."""
    audio_lens = torch.tensor([w.numel() for w in waves])  # (B,)
    audio = torch.zeros(len(waves), int(audio_lens.max()))  # (B, S)
    for b, wave in enumerate(waves):
        audio[b, : wave.numel()] = wave
    return audio, audio_lens
