"""The two model shapes of benchmarks/side_by_side.py, built in NeMo and in minispeech.

minispeech's side comes from its recipe YAML through the public API (`CTCModel(cfg)`,
`TransducerModel(cfg)`); NeMo's side is an OmegaConf config written from the same
values (NeMo's section and key names are minispeech's), with no dataset. NeMo's initial
weights are then copied into minispeech with a strict `load_state_dict`, which proves
the two architectures have the same tensors, and makes greedy decoding emit the same
tokens on both sides (same work to time).

- Conformer-CTC small: configs/asr/conformer_ctc_small.yaml as is (NeMo's
  conformer_ctc_char recipe at d_model 176, 16 layers, 4 heads, ff x4, kernel 31,
  striding x4, 80 mels; 28 characters + blank).
- FastConformer-Transducer small: configs/asr/fastconformer_transducer_tiny.yaml
  scaled to the "Small (14M)" row of NeMo's fast-conformer_transducer_bpe.yaml: d_model
  176, 16 layers, 4 heads, kernel 9, dw_striding x8 with 256 channels, 80 mels,
  pred/joint hidden 320, 1 LSTM layer, dropout 0.2 in prediction and joint nets,
  SpecAugment 2 x 27 bins and 10 x 5% frames; the same 28 characters (NeMo's row is for
  a BPE vocabulary, hence its 14 M). NeMo's joint is un-fused (`fuse_loss_wer: false`,
  its recipe fuses in sub-batches of 4) so both sides run the whole batch at once.

Losses are each side's default: NeMo's CTCLoss (torch's ctc_loss) and, on CPU, its
warprnnt_numba RNN-T loss (NeMo's joint log-softmaxes first, as it does on CPU);
minispeech's own ctc_loss and rnnt_loss.
"""

import copy

import torch
from common import RECIPES, REPO

from minispeech.asr import CTCModel, TransducerModel
from minispeech.core.config import load_config
from minispeech.core.optim import build_optimizer
from minispeech.nemo.asr import map_state_dict

NEMO_MODULES = "nemo.collections.asr.modules."
RECIPE_ONLY = ("train_ds", "validation_ds", "test_ds", "optim", "freq_warp")


def minispeech_config(name: str) -> dict:
    """The minispeech `model:` section of shape `name` ("ctc" or "rnnt")."""
    if name == "ctc":
        return load_config(REPO / RECIPES["ctc_small"])["model"]
    cfg = load_config(REPO / RECIPES["rnnt"])["model"]
    cfg = {k: v for k, v in cfg.items() if k not in RECIPE_ONLY}  # VTLP: not in NeMo
    cfg["preprocessor"]["features"] = 80
    cfg["spec_augment"].update(freq_masks=2, freq_width=27, time_masks=10)
    cfg["encoder"].update(
        feat_in=80,
        d_model=176,
        n_layers=16,
        n_heads=4,
        conv_kernel_size=9,
        subsampling_conv_channels=256,
    )
    cfg["decoder"].update(pred_hidden=320, dropout=0.2)
    cfg["joint"].update(joint_hidden=320, dropout=0.2)
    return cfg


def nemo_config(ms: dict, name: str) -> dict:
    """NeMo's EncDecCTCModel / EncDecRNNTModel config with minispeech's values."""
    labels, d_model = ms["labels"], ms["encoder"]["d_model"]
    encoder = {k: v for k, v in ms["encoder"].items() if k != "_target_"}
    cfg = {
        "sample_rate": ms.get("sample_rate", 16000),
        "labels": labels,
        "preprocessor": {
            "_target_": NEMO_MODULES + "AudioToMelSpectrogramPreprocessor",
            **ms["preprocessor"],
        },
        "spec_augment": {
            "_target_": NEMO_MODULES + "SpectrogramAugmentation",
            **ms["spec_augment"],
        },
        "encoder": {"_target_": NEMO_MODULES + "ConformerEncoder", **encoder},
    }
    if name == "ctc":
        cfg["decoder"] = {
            "_target_": NEMO_MODULES + "ConvASRDecoder",
            "feat_in": d_model,
            "num_classes": len(labels),
            "vocabulary": labels,
        }
        cfg["ctc_reduction"] = ms.get("ctc_reduction", "mean_batch")
        return cfg
    dec, joint = ms["decoder"], ms["joint"]
    cfg["model_defaults"] = {
        "enc_hidden": d_model,
        "pred_hidden": dec["pred_hidden"],
        "joint_hidden": joint["joint_hidden"],
    }
    cfg["decoder"] = {
        "_target_": NEMO_MODULES + "RNNTDecoder",
        "blank_as_pad": True,
        "vocab_size": len(labels),
        "prednet": {
            "pred_hidden": dec["pred_hidden"],
            "pred_rnn_layers": dec["pred_rnn_layers"],
            "dropout": dec["dropout"],
        },
    }
    cfg["joint"] = {
        "_target_": NEMO_MODULES + "RNNTJoint",
        "fuse_loss_wer": False,
        "num_classes": len(labels),
        "vocabulary": labels,
        "jointnet": {
            "joint_hidden": joint["joint_hidden"],
            "activation": joint["activation"],
            "dropout": joint["dropout"],
        },
    }
    cfg["rnnt_reduction"] = ms["loss"]["reduction"]
    cfg["loss"] = {"loss_name": "default"}  # warprnnt_numba on CPU
    cfg["decoding"] = {
        "strategy": "greedy_batch",
        "greedy": {"max_symbols": ms["decoding"]["max_symbols"]},
    }
    return cfg


def build_pair(name: str, nemo_models, seed: int = 0) -> tuple:
    """(NeMo model or None, minispeech model) of shape `name`, same weights."""
    ms_cfg = minispeech_config(name)
    torch.manual_seed(seed)
    ours = (CTCModel if name == "ctc" else TransducerModel)(copy.deepcopy(ms_cfg))
    if nemo_models is None:
        return None, ours
    from omegaconf import OmegaConf

    model_class = (
        nemo_models.EncDecCTCModel if name == "ctc" else nemo_models.EncDecRNNTModel
    )
    torch.manual_seed(seed)
    nemo = model_class(OmegaConf.create(nemo_config(ms_cfg, name)))
    copy_weights(nemo, ours, name)
    return nemo, ours


def copy_weights(nemo, ours, name: str) -> None:
    """NeMo's tensors into minispeech (strict: every key and shape must match)."""
    ours.load_state_dict(map_state_dict(nemo.state_dict(), name), strict=True)


def make_batch(n: int, seconds: float, n_labels: int, n_vocab: int, seed: int) -> dict:
    """Random audio (B, S) and labels (B, U), the same tensors for both sides."""
    g = torch.Generator().manual_seed(seed)
    samples = int(seconds * 16000)  # 4 s -> 64000 samples
    return {
        "audio": 0.1 * torch.randn(n, samples, generator=g),  # (B, S)
        "audio_lens": torch.full((n,), samples),
        "tokens": torch.randint(0, n_vocab, (n, n_labels), generator=g),  # (B, U)
        "token_lens": torch.full((n,), n_labels),
    }


def nemo_loss(model, batch: dict, name: str) -> torch.Tensor:
    """NeMo's training_step without its logging: forward, heads, loss."""
    signal = {
        "input_signal": batch["audio"],
        "input_signal_length": batch["audio_lens"],
    }
    tokens, token_lens = batch["tokens"], batch["token_lens"]
    if name == "ctc":
        log_probs, enc_lens, _ = model(**signal)  # (B, T', V)
        return model.loss(
            log_probs=log_probs,
            targets=tokens,
            input_lengths=enc_lens,
            target_lengths=token_lens,
        )
    enc, enc_lens = model(**signal)  # (B, D, T')
    pred, token_lens, _ = model.decoder(targets=tokens, target_length=token_lens)
    joint = model.joint(encoder_outputs=enc, decoder_outputs=pred)  # (B, T', U+1, V)
    return model.loss(
        log_probs=joint,
        targets=tokens,
        input_lengths=enc_lens,
        target_lengths=token_lens,
    )


def nemo_transcribe(model, audio: torch.Tensor, audio_lens: torch.Tensor, name: str):
    """NeMo's greedy texts of a batch (forward + its batched greedy decoder)."""
    if name == "ctc":
        log_probs, enc_lens, _ = model(
            input_signal=audio, input_signal_length=audio_lens
        )
        hyps = model.decoding.ctc_decoder_predictions_tensor(
            log_probs, decoder_lengths=enc_lens
        )
    else:
        enc, enc_lens = model(input_signal=audio, input_signal_length=audio_lens)
        hyps = model.decoding.rnnt_decoder_predictions_tensor(
            encoder_output=enc, encoded_lengths=enc_lens
        )
    return [h.text for h in hyps]


def adamw(params):
    """AdamW as minispeech's trainer builds it from `optim: {name: adamw}` (fused
    where torch has the kernel); NeMo's side gets torch's default AdamW."""
    return build_optimizer(params, {"name": "adamw", "lr": 1e-3})


def train_step(model, loss_fn, optimizer=None):
    """One optimizer step of `model`: zero grads, loss, backward, optimizer step
    (default: torch's AdamW with its defaults, what NeMo's `optim: adamw` builds)."""
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()

    return step


def calibrate_blank(ours, nemo, batch: dict, target: float = 1.0) -> float:
    """Raise the joint's blank bias (both sides) until greedy decoding of the random
    model emits about `target` labels per frame (speech runs at about 15 characters
    a second: 1.2 per 80 ms frame), instead of hitting the 10-per-frame cap."""
    bias = ours.joint.joint_net[-1].bias  # (V,)
    with torch.no_grad():
        enc, enc_lens = ours(batch["audio"], batch["audio_lens"])  # (B, D, T')
        lo, hi, start = 0.0, 8.0, float(bias[ours.blank])
        for _ in range(12):  # bisection: more blank bias, fewer labels
            bias[ours.blank] = start + (lo + hi) / 2
            n_labels = sum(map(len, ours.decode_ids(enc, enc_lens)))
            if n_labels > target * enc_lens.sum():
                lo = (lo + hi) / 2
            else:
                hi = (lo + hi) / 2
        bias[ours.blank] = start + hi
        if nemo is not None:
            nemo.joint.joint_net[-1].bias[ours.blank] = start + hi
    return sum(map(len, ours.decode_ids(enc, enc_lens))) / float(enc_lens.sum())


def describe_params(label: str, nemo, ours) -> str:
    """Both parameter counts, and whether they differ."""
    n_ours = sum(p.numel() for p in ours.parameters())
    line = f"{label}: minispeech {n_ours / 1e6:.3f} M parameters"
    if nemo is not None:
        n_nemo = sum(p.numel() for p in nemo.parameters())
        same = "equal" if n_nemo == n_ours else f"DIFFER by {n_ours - n_nemo:+,}"
        line += f", NeMo {n_nemo / 1e6:.3f} M ({same}; weights copied, strict)"
    return line
