"""The task models of benchmarks/side_by_side.py, built in NeMo and in minispeech.

As nemo_shapes.py does for ASR: minispeech's side is the recipe's `model:` section
through the public API; NeMo's side is a config written from the same values with
NeMo's class names and no dataset; NeMo's initial weights are then copied into
minispeech with a strict `load_state_dict` (through the importer's own key mapping),
which proves that the two have the same tensors.

- titanet: configs/speaker/titanet_tiny.yaml (TitaNet, 5 blocks of 64 filters, SE,
  attentive pooling, 128-dim embedding, ArcFace over the 120 training speakers),
  SpecAugment on; a batch of 32 x 2 s (the recipe's 64 s of audio per batch).
- masking: configs/enhancement/masking_tiny.yaml (STFT 512/256, 2-layer BLSTM mask
  estimator of 128 features, SI-SDR loss); 16 mixtures of 2 s, the recipe's batch.
- fastpitch: configs/tts/fastpitch_tiny.yaml (3+3 FFT layers of d_model 128, the
  aligner learnt: MAS, forward-sum and bin losses); the recipe's batch of 16
  utterances of the bundled TTS voice with their pitch and prior, the same tensors
  for both sides. Both use the bin loss at full weight (NeMo's weight reads the
  trainer's epoch, which a bare model does not have).

- hifigan: configs/tts/hifigan_tiny.yaml's generator (upsample_initial_channel 64,
  0.25 M parameters) with the paper's discriminators on both sides (NeMo's are not
  configurable: 70.7 M parameters; the recipe's are 0.1 M and would not be the same
  computation); 8 segments of 8192 samples, the recipe's batch. A step is NeMo's
  manual GAN step: the discriminators' step on real and detached fake audio, then
  the generator's (adversarial, feature matching, 45 x mel L1), each with its AdamW.
"""

import copy
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from common import RECIPES, REPO
from nemo_shapes import adamw, make_batch, train_step

from minispeech.core.config import load_config
from minispeech.enhancement import EnhancementModel
from minispeech.nemo.fastpitch import fastpitch_state_dict
from minispeech.nemo.hifigan import MEL_PREFIXES, nemo_state_dict
from minispeech.nemo.speaker import RECOMPUTED
from minispeech.speaker import SpeakerModel
from minispeech.training.optimizers import Optimizers
from minispeech.tts import FastPitchModel, HifiGanModel

TASKS = {
    "titanet": "TitaNet tiny (speaker)",
    "masking": "Masking BLSTM (enhancement)",
    "fastpitch": "FastPitch tiny (TTS, aligner)",
    "hifigan": "HiFi-GAN (tiny G, paper D)",
}
N_SPEAKERS = 120  # the bundled corpus's training speakers
ASR, AUDIO, TTS = (
    "nemo.collections.asr.",
    "nemo.collections.audio.",
    "nemo.collections.tts.",
)


def recipe_model(name: str) -> dict:
    """The recipe's `model:` section without its datasets and optimizer."""
    cfg = load_config(REPO / RECIPES[name])["model"]
    drop = ("train_ds", "validation_ds", "test_ds", "optim")
    cfg = {k: v for k, v in cfg.items() if k not in drop}
    if name == "titanet":
        cfg["labels"] = [f"spk{i:03d}" for i in range(N_SPEAKERS)]
    if name == "hifigan":  # the paper's discriminators (the classes' defaults), GAN on
        cfg = {k: v for k, v in cfg.items() if k not in ("mpd", "msd")}
        cfg["discriminator_start_step"] = 0
    return cfg


# ------------------------------------------------------------------ NeMo configs
def titanet_nemo_config(ms: dict) -> dict:
    blocks = [
        {"stride": [1], "dilation": [1], "se": False, **block}
        for block in ms["encoder"]["jasper"]
    ]
    return {
        "sample_rate": 16000,
        "train_ds": {"sample_rate": 16000, "labels": None, "defer_setup": True},
        "preprocessor": {
            "_target_": ASR + "modules.AudioToMelSpectrogramPreprocessor",
            **ms["preprocessor"],
        },
        "spec_augment": {
            "_target_": ASR + "modules.SpectrogramAugmentation",
            **ms["spec_augment"],
        },
        "encoder": {
            "_target_": ASR + "modules.ConvASREncoder",
            "feat_in": ms["encoder"]["feat_in"],
            "activation": ms["encoder"]["activation"],
            "conv_mask": True,
            "jasper": blocks,
        },
        "decoder": {
            "_target_": ASR + "modules.SpeakerDecoder",
            "feat_in": blocks[-1]["filters"],
            "num_classes": len(ms["labels"]),
            **ms["decoder"],
        },
        "loss": {
            "_target_": ASR + "losses.angularloss.AngularSoftmaxLoss",
            "scale": ms["loss"]["scale"],
            "margin": ms["loss"]["margin"],
        },
    }


def masking_nemo_config(ms: dict) -> dict:
    est = {k: v for k, v in ms["mask_estimator"].items() if k != "_target_"}
    # NeMo's estimator reads the magnitude only (minispeech's default, no key there)
    features = est.pop("input_features", "magnitude")
    if features != "magnitude":
        raise ValueError(f"NeMo's MaskEstimatorRNN has no input_features={features!r}")
    return {
        "sample_rate": ms["sample_rate"],
        "skip_nan_grad": False,
        "num_outputs": 1,
        "encoder": {
            "_target_": AUDIO + "modules.transforms.AudioToSpectrogram",
            **ms["encoder"],
        },
        "decoder": {
            "_target_": AUDIO + "modules.transforms.SpectrogramToAudio",
            **ms["decoder"],
        },
        "mask_estimator": {
            "_target_": AUDIO + "modules.masking.MaskEstimatorRNN",
            "num_outputs": 1,
            **est,
        },
        "mask_processor": {
            "_target_": AUDIO + "modules.masking.MaskReferenceChannel",
            **ms["mask_processor"],
        },
        "loss": {"_target_": AUDIO + "losses.SDRLoss", **ms["loss"]},
    }


def fastpitch_nemo_config(ms: dict) -> dict:
    d_model, pre = ms["input_fft"]["d_model"], ms["preprocessor"]
    predictor = {"_target_": TTS + "modules.fastpitch.TemporalPredictor"}
    return {
        "learn_alignment": True,
        "bin_loss_warmup_epochs": 100,
        "n_speakers": 1,
        "max_token_duration": ms["max_token_duration"],
        "symbols_embedding_dim": d_model,
        "pitch_embedding_kernel_size": ms["pitch_embedding_kernel_size"],
        "sample_rate": ms["sample_rate"],
        "n_mel_channels": pre["features"],
        "text_tokenizer": {
            "_target_": "nemo.collections.common.tokenizers.text_to_speech."
            "tts_tokenizers.EnglishCharsTokenizer",
            **ms["tokenizer"],
        },
        "train_ds": {
            "dataset": {"_target_": TTS + "data.dataset.TTSDataset"},
            "defer_setup": True,
        },
        "preprocessor": {
            "_target_": ASR + "modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": ms["sample_rate"],
            # NeMo's "no value" for window_size/window_stride is False, not None
            **{k: False if v is None else v for k, v in pre.items()},
        },
        "input_fft": {
            "_target_": TTS + "modules.transformer.FFTransformerEncoder",
            "d_embed": d_model,
            **ms["input_fft"],
        },
        "output_fft": {
            "_target_": TTS + "modules.transformer.FFTransformerDecoder",
            **ms["output_fft"],
        },
        "alignment_module": {
            "_target_": TTS + "modules.aligner.AlignmentEncoder",
            "n_text_channels": d_model,
            "n_mel_channels": pre["features"],
            **ms["alignment_module"],
        },
        "duration_predictor": {
            **predictor,
            "input_size": d_model,
            **ms["duration_predictor"],
        },
        "pitch_predictor": {
            **predictor,
            "input_size": d_model,
            **ms["pitch_predictor"],
        },
    }


def hifigan_nemo_config(ms: dict) -> dict:
    pre = {k: v for k, v in ms["preprocessor"].items() if v is not None}
    pre["nfilt"] = pre.pop("features")  # FilterbankFeatures' name
    return {
        "max_steps": 1000,
        "l1_loss_factor": ms["l1_loss_factor"],
        "preprocessor": {
            "_target_": ASR + "parts.preprocessing.features.FilterbankFeatures",
            **pre,
        },
        "generator": {
            "_target_": TTS + "modules.hifigan_modules.Generator",
            **ms["generator"],
        },
        "train_ds": {
            "dataset": {"_target_": TTS + "data.dataset.VocoderDataset"},
            "defer_setup": True,
        },
    }


def hifigan_state_dict(state: dict) -> dict:
    """NeMo's weights -> minispeech's (the importer's renames), + its step counter."""
    state = {
        k: v
        for k, v in nemo_state_dict(state).items()
        if not k.startswith(MEL_PREFIXES)
    }
    return {**state, "trained_steps": torch.zeros((), dtype=torch.long)}


NEMO = {  # name -> (NeMo class path, config writer, NeMo state dict -> ours)
    "titanet": (
        ASR + "models.EncDecSpeakerLabelModel",
        titanet_nemo_config,
        lambda state: {k: v for k, v in state.items() if k not in RECOMPUTED},
    ),
    "masking": (
        AUDIO + "models.EncMaskDecAudioToAudioModel",
        masking_nemo_config,
        dict,
    ),
    "fastpitch": (
        TTS + "models.FastPitchModel",
        fastpitch_nemo_config,
        lambda state: {  # + minispeech's step counter (the bin loss's ramp)
            **fastpitch_state_dict(state, "NeMo FastPitchModel"),
            "n_train_steps": torch.zeros((), dtype=torch.long),
        },
    ),
    "hifigan": (TTS + "models.HifiGanModel", hifigan_nemo_config, hifigan_state_dict),
}
OURS = {
    "titanet": SpeakerModel,
    "masking": EnhancementModel,
    "fastpitch": FastPitchModel,
    "hifigan": HifiGanModel,
}


def build_task_pair(name: str, have_nemo: bool, seed: int = 0) -> tuple:
    """(NeMo model or None, minispeech model) of task `name`: same weights, train."""
    ms_cfg = recipe_model(name)
    torch.manual_seed(seed)
    ours = OURS[name](copy.deepcopy(ms_cfg)).train()
    if not have_nemo:
        return None, ours
    import importlib

    from omegaconf import OmegaConf

    class_path, write_config, to_ours = NEMO[name]
    module, class_name = class_path.rsplit(".", 1)
    model_class = getattr(importlib.import_module(module), class_name)
    torch.manual_seed(seed)
    nemo = model_class(cfg=OmegaConf.create(write_config(ms_cfg))).train()
    ours.load_state_dict(to_ours(nemo.state_dict()), strict=True)
    return nemo, ours


# ------------------------------------------------------------------ batches, losses
def task_batch(name: str, ours) -> dict:
    """The recipe-sized batch of task `name` (module docstring), fixed seeds."""
    if name == "titanet":
        batch = make_batch(32, 2.0, 1, 1, seed=4)
        g = torch.Generator().manual_seed(5)
        labels = torch.randint(0, N_SPEAKERS, (32,), generator=g)
        return {**batch, "labels": labels, "ids": [str(i) for i in range(32)]}
    if name == "masking":
        clean = make_batch(16, 2.0, 1, 1, seed=6)
        noise = make_batch(16, 2.0, 1, 1, seed=7)["audio"]
        return {
            "input_signal": clean["audio"] + noise,  # (B, S), 0 dB
            "target_signal": clean["audio"],
            "input_length": clean["audio_lens"],
        }
    if name == "hifigan":
        return make_batch(8, 8192 / 16000, 1, 1, seed=8)
    ds_cfg = load_config(REPO / RECIPES[name])["model"]["train_ds"]
    ds_cfg["manifest_filepath"] = str(REPO / ds_cfg["manifest_filepath"])
    dataset = ours.build_dataset(ds_cfg)
    return ours.collate([dataset[i] for i in range(16)])


def ours_step(name: str, ours, batch: dict):
    """One minispeech optimizer step of task `name` (a function of no arguments)."""
    if name != "hifigan":
        return train_step(
            ours, lambda: ours_loss(name, ours, batch), adamw(ours.parameters())
        )
    discriminators = [*ours.mpd.parameters(), *ours.msd.parameters()]
    optimizers = Optimizers(  # what the loop hands a manual model, at fp32 on 1 CPU
        [adamw(ours.generator.parameters()), adamw(discriminators)],
        [None, None],
        torch.amp.GradScaler("cpu", enabled=False),
        SimpleNamespace(accumulate_grad_batches=1, gradient_clip_val=0.0),
        SimpleNamespace(world_size=1, device=torch.device("cpu")),
        manual=True,
    )

    def step():
        optimizers.start_micro_batch(window_end=True)
        ours.training_step(batch, optimizers.items)
        optimizers.end_window()

    return step


def nemo_step(name: str, nemo, batch: dict):
    """One NeMo optimizer step of task `name` (its training_step, no trainer)."""
    if name != "hifigan":
        return train_step(nemo, lambda: nemo_loss(name, nemo, batch))
    opt_g = torch.optim.AdamW(nemo.generator.parameters(), lr=1e-3)
    opt_d = torch.optim.AdamW([*nemo.msd.parameters(), *nemo.mpd.parameters()], lr=1e-3)
    return lambda: hifigan_nemo_step(nemo, batch, opt_g, opt_d)


def hifigan_nemo_step(nemo, batch: dict, opt_g, opt_d) -> None:
    """HifiGanModel.training_step without the trainer (manual_backward = backward)."""
    audio, lens = batch["audio"], batch["audio_lens"]
    target_mel, _ = nemo.trg_melspec_fn(audio, lens)
    mel, _ = nemo.audio_to_melspec_precessor(audio, lens)
    real = audio.unsqueeze(1)  # (B, 1, S)
    fake = nemo.generator(x=mel)
    fake_mel, _ = nemo.trg_melspec_fn(fake.squeeze(1), lens)
    opt_d.zero_grad()
    loss_d = 0.0
    for discriminator in (nemo.mpd, nemo.msd):
        real_scores, fake_scores, _, _ = discriminator(y=real, y_hat=fake.detach())
        loss_d = (
            loss_d
            + nemo.discriminator_loss(
                disc_real_outputs=real_scores, disc_generated_outputs=fake_scores
            )[0]
        )
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    loss_g = F.l1_loss(fake_mel, target_mel) * nemo.l1_factor
    for discriminator in (nemo.mpd, nemo.msd):
        _, fake_scores, real_maps, fake_maps = discriminator(y=real, y_hat=fake)
        loss_g = loss_g + nemo.feature_loss(fmap_r=real_maps, fmap_g=fake_maps)
        loss_g = loss_g + nemo.generator_loss(disc_outputs=fake_scores)[0]
    loss_g.backward()
    opt_g.step()


def ours_loss(name: str, ours, batch: dict) -> torch.Tensor:
    if name == "fastpitch":
        ours.n_train_steps.fill_(10**6)  # the bin loss at full weight, as NeMo's below
    return ours.training_step(batch)["loss"]


def nemo_loss(name: str, nemo, batch: dict) -> torch.Tensor:
    """NeMo's training_step without its logging (and the trainer it reads)."""
    if name == "titanet":
        logits, _ = nemo.forward(
            input_signal=batch["audio"], input_signal_length=batch["audio_lens"]
        )
        return nemo.loss(logits=logits, labels=batch["labels"])
    if name == "masking":
        noisy = batch["input_signal"].unsqueeze(1)  # (B, 1, S): NeMo's channel axis
        target = batch["target_signal"].unsqueeze(1)
        out, _ = nemo.forward(input_signal=noisy, input_length=batch["input_length"])
        return nemo.loss(
            estimate=out, target=target, input_length=batch["input_length"]
        )
    return fastpitch_nemo_loss(nemo, batch)


def fastpitch_nemo_loss(nemo, batch: dict) -> torch.Tensor:
    mels, spec_len = nemo.preprocessor(
        input_signal=batch["audio"], length=batch["audio_lens"]
    )
    text, text_lens = batch["text"], batch["text_lens"]
    out = nemo(
        text=text,
        durs=None,
        pitch=batch["pitch"],  # (B, T) frame-level: averaged per token by NeMo
        energy=None,
        speaker=None,
        pace=1.0,
        spec=mels,
        attn_prior=batch["attn_prior"],
        mel_lens=spec_len,
        input_lens=text_lens,
    )
    mels_pred, _, _, log_durs, pitch_pred, soft, logprob, hard, hard_dur, pitch = out[
        :10
    ]
    return (
        nemo.mel_loss_fn(spect_predicted=mels_pred, spect_tgt=mels)
        + nemo.duration_loss_fn(
            log_durs_predicted=log_durs, durs_tgt=hard_dur, len=text_lens
        )
        + nemo.forward_sum_loss_fn(
            attn_logprob=logprob, in_lens=text_lens, out_lens=spec_len
        )
        + nemo.bin_loss_fn(hard_attention=hard, soft_attention=soft)
        + nemo.pitch_loss_fn(pitch_predicted=pitch_pred, pitch_tgt=pitch, len=text_lens)
    )
