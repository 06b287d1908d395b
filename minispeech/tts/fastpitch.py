"""FastPitch: tokens -> mel spectrogram, with durations and pitch predicted per token.

Lancucki 2021, "FastPitch: Parallel Text-to-speech with Pitch Prediction"
(arXiv:2006.06873), Sec. 2 and Fig. 1, with the learned aligner of Badlani et al.
2022, "One TTS Alignment To Rule Them All" (arXiv:2108.10447), as NeMo's
FastPitchModule builds it (nemo/collections/tts/modules/fastpitch.py):
  1. h = FFTransformerEncoder(tokens)                               (B, U, D)
  2. log(1 + d_hat) = DurationPredictor(h), d_hat = clamp(exp(.) - 1, min, max)
     and p_hat = PitchPredictor(h)                                 (B, U)
  3. g = h + PitchEmbedding(p), a conv k over the pitch track
  4. LengthRegulator: token j repeated round(d_j / pace) times  (B, T, D)
  5. mel = proj(FFTransformer(repeated g))                         (B, M, T)
Three ways to choose d and p:
  - inference (spec None, durs None): d = d_hat, p = p_hat (or a given token pitch);
  - given durations (spec None): d and the token pitch p are the caller's;
  - teacher-forced training (spec given): the aligner's soft map A_soft (with the
    static prior, Badlani Sec. 2) is binarized by MAS into A_hard, d = frames per
    token of A_hard and p = the mean of the voiced (non-zero) frames of the given
    frame pitch over each token's frames (FastPitch Sec. 2), so dec_lens = mel_lens.
Differs from NeMo: in the teacher-forced path the given pitch is always frame-level
and always averaged (NeMo averages only when its length differs from the text's);
speaker and energy conditioning are not implemented; with `mask_padding` (see
fft_transformer.py, predictors.py) padding does not leak into valid tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from minispeech.tts.aligner import (
    average_features,
    binarize_attention,
    hard_durations,
    log_to_duration,
    regulate_len,
)
from minispeech.tts.fft_transformer import FFTransformer, FFTransformerEncoder
from minispeech.tts.predictors import AlignmentEncoder, TemporalPredictor


@dataclass(frozen=True)
class FastPitchOutput:
    """What one FastPitch forward returns (B batch, U tokens, T frames, M mels)."""

    spect: Tensor  # (B, M, T) mel spectrogram; frames past dec_lens hold proj's bias
    dec_lens: Tensor  # (B,) valid frames of each item
    durs_predicted: Tensor  # (B, U) predicted frames per token (float, before rounding)
    log_durs_predicted: Tensor  # (B, U) duration predictor output log(1 + d), 0 on pad
    pitch_predicted: Tensor  # (B, U) pitch predictor output (normalised pitch)
    pitch: Tensor  # (B, U) the token pitch embedded: given, averaged or predicted
    durations: Tensor  # (B, U) frames per token the length regulator used
    attn_soft: Tensor | None = None  # (B, 1, T, U) aligner soft map (spec given)
    attn_logprob: Tensor | None = None  # (B, 1, T, U) log-probs before masking
    attn_hard: Tensor | None = None  # (B, 1, T, U) MAS path, 0/1
    attn_hard_dur: Tensor | None = None  # (B, U) frames per token of attn_hard


class FastPitch(nn.Module):
    """The FastPitch network (module docstring); the sub-modules are built by the
    caller (FastPitchModel) from their config sections."""

    def __init__(
        self,
        encoder: FFTransformerEncoder,
        decoder: FFTransformer,
        duration_predictor: TemporalPredictor,
        pitch_predictor: TemporalPredictor,
        aligner: AlignmentEncoder,
        n_mel_channels: int = 80,
        pitch_embedding_kernel_size: int = 3,
        max_token_duration: float = 75,
        min_token_duration: float = 0,
    ):
        super().__init__()
        k = pitch_embedding_kernel_size
        assert k % 2 == 1, f"pitch_embedding_kernel_size must be odd, got {k}"
        self.encoder = encoder
        self.decoder = decoder
        self.duration_predictor = duration_predictor
        self.pitch_predictor = pitch_predictor
        self.aligner = aligner
        self.max_token_duration = max_token_duration
        self.min_token_duration = min_token_duration
        self.pitch_emb = nn.Conv1d(1, encoder.d_model, k, padding=(k - 1) // 2)
        self.proj = nn.Linear(decoder.d_model, n_mel_channels)

    def forward(
        self,
        text: Tensor,
        text_lens: Tensor,
        durs: Tensor | None = None,
        pitch: Tensor | None = None,
        pace: float = 1.0,
        spec: Tensor | None = None,
        mel_lens: Tensor | None = None,
        attn_prior: Tensor | None = None,
    ) -> FastPitchOutput:
        """text (B, U) ids, text_lens (B,); durs (B, U) and pitch (B, U) per token,
        or with spec (B, M, T), mel_lens (B,) and attn_prior (B, T, U): pitch (B, T)
        per frame (teacher-forced path). Returns a FastPitchOutput."""
        assert text.dim() == 2, f"text must be (B, U), got {tuple(text.shape)}"
        enc_out, enc_mask = self.encoder(text, text_lens)  # (B, U, D), (B, U, 1)
        log_durs = self.duration_predictor(enc_out, enc_mask)  # (B, U)
        durs_predicted = log_to_duration(
            log_durs, self.min_token_duration, self.max_token_duration, enc_mask
        )  # (B, U)
        pitch_predicted = self.pitch_predictor(enc_out, enc_mask)  # (B, U)
        align = {}
        if spec is not None:
            align = self.align(text, enc_mask, spec, text_lens, mel_lens, attn_prior)
            durs = align["attn_hard_dur"]  # (B, U)
            if pitch is not None:
                pitch = self.token_pitch(pitch, durs, spec.shape[-1])  # (B, U)
        elif durs is None:
            durs = durs_predicted
        if pitch is None:
            pitch = pitch_predicted
        assert pitch.shape == text.shape, f"token pitch {pitch.shape} vs {text.shape}"
        enc_out = enc_out + self.pitch_emb(pitch[:, None, :]).transpose(1, 2)
        spect, dec_lens = self.decode(enc_out, durs, pace)  # (B, M, T), (B,)
        return FastPitchOutput(
            spect, dec_lens, durs_predicted, log_durs, pitch_predicted, pitch, durs,
            **align,
        )  # fmt: skip

    def align(self, text, enc_mask, spec, text_lens, mel_lens, attn_prior) -> dict:
        """The learned aligner: soft map, MAS hard path and its durations."""
        assert spec.dim() == 3, f"spec must be (B, M, T), got {tuple(spec.shape)}"
        assert mel_lens is not None, "the teacher-forced path needs mel_lens"
        text_emb = self.encoder.word_emb(text)  # (B, U, D)
        attn_soft, attn_logprob = self.aligner(
            spec, text_emb, enc_mask[..., 0] > 0, attn_prior
        )  # (B, 1, T, U) each
        attn_hard = binarize_attention(attn_soft, text_lens, mel_lens)  # (B,1,T,U)
        return {
            "attn_soft": attn_soft,
            "attn_logprob": attn_logprob,
            "attn_hard": attn_hard,
            "attn_hard_dur": hard_durations(attn_hard),  # (B, U)
        }

    @staticmethod
    def token_pitch(pitch: Tensor, durs: Tensor, n_frames: int) -> Tensor:
        """Frame pitch (B, T) -> per token mean of its voiced frames (B, U)."""
        assert pitch.dim() == 2 and pitch.shape[1] == n_frames, (
            f"teacher-forced pitch must be (B, {n_frames}) frames, got "
            f"{tuple(pitch.shape)}"
        )
        return average_features(pitch[:, None, :], durs)[:, 0]  # (B, U)

    def decode(self, enc_out: Tensor, durs: Tensor, pace: float):
        """Length regulation and the output FFT: (B, U, D) -> (B, M, T), (B,)."""
        regulated, dec_lens = regulate_len(durs, enc_out, pace)  # (B, T, D), (B,)
        dec_out, _ = self.decoder(regulated, dec_lens)  # (B, T, D)
        return self.proj(dec_out).transpose(1, 2), dec_lens  # (B, M, T)
