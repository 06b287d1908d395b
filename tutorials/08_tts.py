# %% [markdown]
# # 08 · Text to speech: FastPitch learns where each character is spoken
#
# **Expected time:** about 3 minutes on 2 CPU cores with the default 300 training steps
# (`MINISPEECH_TUTORIAL_STEPS=20` makes it a quick smoke run, as the test suite does).
# **Result:** a small FastPitch trained briefly on the corpus's TTS voice: its soft
# alignment with the monotonic path MAS picks drawn on it, the durations that path
# gives each character, the pitch contour, a generated mel spectrogram beside the real
# one, and WAV files (Griffin-Lim vocoder) at three speaking rates. The full recipe
# (`configs/tts/fastpitch_tiny.yaml`, 2,000 steps) speaks much more clearly.
#
# Run: `python tutorials/08_tts.py [OUT_DIR]`.
#
# FastPitch (Łańcucki 2021) turns characters into a mel spectrogram in parallel: an
# encoder reads the characters, a duration predictor says how many frames each one
# lasts, a pitch predictor gives each one a pitch, and the length regulator repeats
# every character's vector that many times before a decoder turns frames into mels.
# Training needs the true durations. Nobody labels them here: an alignment encoder
# (Badlani et al. 2022) compares every mel frame with every character and learns a
# soft alignment with a CTC-like "forward-sum" loss; monotonic alignment search (MAS)
# turns it into one hard path, and the path's run lengths are the durations.

# %%
import torch
from common import REPO, output_dir, pyplot, save_figure, short_recipe, training_steps

from minispeech import read_manifest, train
from minispeech.audio import load_audio, save_audio
from minispeech.core.model import restore_from
from minispeech.tts.dataset import build_tts_dataset, collate_tts
from minispeech.tts.synthesis import Synthesizer

torch.manual_seed(0)
OUT = output_dir()  # the first argument, $MINISPEECH_TUTORIAL_OUT or tutorials/out
STEPS = training_steps(default=300)  # $MINISPEECH_TUTORIAL_STEPS overrides
plt = pyplot()  # None without matplotlib: no figures, the same numbers

# %% [markdown]
# ## 1. Train briefly
# 228 utterances of one espeak-ng voice (the last 20 of `tts_train.jsonl` are the dev
# set). The binarization loss, which pulls the soft alignment towards the hard one,
# ramps in over the first 10% of the steps.

# %%
cfg = short_recipe("configs/tts/fastpitch_tiny.yaml", "tutorial_fastpitch", STEPS, OUT)
cfg["model"]["bin_loss_warmup_steps"] = max(1, STEPS // 10)
cfg["model"]["val_synthesis"] = False  # speed: no Griffin-Lim scoring while training
model = restore_from(train(cfg)).eval()
print(f"{model.num_parameters():,} parameters")

# %% [markdown]
# ## 2. The alignment of a dev utterance
# The teacher-forced pass sees the real mel spectrogram, so it can align it with the
# text: `attn_soft` is, for each mel frame, a distribution over the characters; MAS
# finds the monotonic path (each frame stays on its character or moves to the next)
# with the highest total log-probability.

# %%
dev = build_tts_dataset(cfg["model"]["validation_ds"], cfg["model"])
batch = collate_tts([dev[0]], model.tokenizer.pad)
with torch.no_grad():
    out, mels, mel_lens = model.forward_batch(batch)
n_frames, n_tokens = int(mel_lens[0]), int(batch["text_lens"][0])
soft = out.attn_soft[0, 0, :n_frames, :n_tokens]  # (T, U)
hard = out.attn_hard[0, 0, :n_frames, :n_tokens]  # (T, U) 0/1
durations = out.attn_hard_dur[0, :n_tokens]  # (U,) frames per character
text = dev.audio.rows[0]["text"]
chars = [model.tokenizer.id_to_char(t) for t in batch["text"][0, :n_tokens].tolist()]
print(text)
print("frames per character:", list(zip(chars, durations.int().tolist()))[:12], "...")
assert int(durations.sum()) == n_frames  # the path covers every frame exactly once

if plt is not None:
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.imshow(soft.T, origin="lower", aspect="auto", cmap="magma")
    frames, tokens = torch.nonzero(hard, as_tuple=True)
    ax.plot(frames, tokens, color="cyan", linewidth=1, label="MAS path")
    ax.set_xlabel("mel frame")
    ax.set_ylabel("character")
    ax.set_title("soft alignment and the MAS path")
    ax.legend(loc="upper left")
    save_figure(fig, OUT / "tts_alignment.png")

    fig, ax = plt.subplots(figsize=(10, 3))
    ax.bar(range(n_tokens), durations, color="tab:blue", label="MAS durations")
    predicted = out.log_durs_predicted[0, :n_tokens].exp() - 1
    ax.plot(range(n_tokens), predicted, "k.", label="predicted")
    ax.set_xticks(range(n_tokens), [c if c != " " else "␣" for c in chars])
    ax.set_ylabel("frames")
    ax.legend()
    save_figure(fig, OUT / "tts_durations.png")

# %% [markdown]
# ## 3. Pitch
# The target is YIN's frame pitch (0 where unvoiced), normalised by the voice's mean
# and standard deviation; FastPitch predicts one value per character, the average
# of that character's voiced frames.

# %%
pitch_frames = batch["pitch"][0, :n_frames]  # (T,) normalised, 0 = unvoiced
print(f"voiced frames: {float((pitch_frames != 0).float().mean()):.0%}")
if plt is not None:
    starts = torch.cumsum(durations, 0) - durations  # (U,) first frame per character
    fig, ax = plt.subplots(figsize=(10, 3))
    voiced = pitch_frames != 0
    ax.plot(torch.nonzero(voiced)[:, 0], pitch_frames[voiced], ".", label="YIN frames")
    ax.step(starts, out.pitch[0, :n_tokens], where="post", label="character average")
    ax.step(starts, out.pitch_predicted[0, :n_tokens], where="post", label="predicted")
    ax.set_xlabel("mel frame")
    ax.set_ylabel("normalised pitch")
    ax.legend()
    save_figure(fig, OUT / "tts_pitch.png")

# %% [markdown]
# ## 4. Generated against real
# At inference nothing is teacher-forced: the durations and the pitch are the
# predictors' own.

# %%
synth = Synthesizer(model, "griffin-lim")
result = synth(text)
real = mels[0, :, :n_frames]
print(f"real {n_frames} frames, generated {result.mel.shape[1]} frames")
if plt is not None:
    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for ax, (title, image) in zip(axes, (("real", real), ("generated", result.mel))):
        ax.imshow(image, origin="lower", aspect="auto")
        ax.set_title(f"{title} log-mel")
    axes[1].set_xlabel("frame")
    save_figure(fig, OUT / "tts_mels.png")

# %% [markdown]
# ## 5. Listen
# The dev recording, its synthesis, and a new sentence at three paces (> 1 is faster:
# every duration is divided by the pace before rounding).

# %%
row = read_manifest(REPO / "data/tinyspeech/tts_train.jsonl")[228]
save_audio(
    OUT / "tts_recording.wav", load_audio(row["audio_filepath"], 16000)[0], 16000
)
save_audio(OUT / "tts_dev_synthesized.wav", result.wave, 16000)
for pace in (0.8, 1.0, 1.25):
    new = synth("please call nina on sunday", pace=pace)
    seconds = new.wave.numel() / 16000
    print(f"pace {pace}: {seconds:.2f} s; words {[w for w, *_ in new.words]}")
    save_audio(OUT / f"tts_pace{pace}.wav", new.wave, 16000)
