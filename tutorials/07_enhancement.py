# %% [markdown]
# # 07 · Speech enhancement: a learned mask against the Wiener filter
#
# **Expected time:** about 2 minutes on 2 CPU cores with the default 300 training steps
# (`MINISPEECH_TUTORIAL_STEPS=20` makes it a quick smoke run, as the test suite does).
# **Result:** a small mask-based enhancement model (NeMo's BLSTM masking recipe,
# shortened), the noisy, enhanced and clean spectrograms of a test utterance with the
# model's mask, the SI-SDR improvement per SNR beside the Wiener filter, and the three
# WAV files to listen to.
#
# Run: `python tutorials/07_enhancement.py [OUT_DIR]`.
#
# The model never predicts audio. It looks at the noisy spectrogram's magnitudes and
# predicts, for every time-frequency bin, a number in [0, 1]: how much of that bin to
# keep. Multiplying the noisy complex spectrogram by this mask and inverting the STFT
# gives the enhanced wave. It learns the mask by maximising the scale-invariant SDR
# (Le Roux et al. 2019) of that wave against the clean one. The classic Wiener filter
# (Ephraim & Malah 1984) computes a similar gain from an estimate of the noise
# spectrum instead of learning it.

# %%
import numpy as np
import torch
from common import (
    REPO,
    output_dir,
    pyplot,
    save_figure,
    short_recipe,
    training_steps,
)

from minispeech import read_manifest, train
from minispeech.audio import load_audio, save_audio
from minispeech.audio.noise import make_noise, scale_to_snr
from minispeech.core.model import restore_from
from minispeech.enhancement import wiener_filter
from minispeech.metrics import si_sdr, stoi

torch.manual_seed(0)
OUT = output_dir()  # the first argument, $MINISPEECH_TUTORIAL_OUT or tutorials/out
STEPS = training_steps(default=300)  # $MINISPEECH_TUTORIAL_STEPS overrides
plt = pyplot()  # None without matplotlib: no figures, the same numbers

# %% [markdown]
# ## 1. Train briefly
# Training speech mixed on the fly with white, pink or babble noise (other training
# speakers) at -5 to 15 dB, in random 2-second crops; half of the pairs pass through a
# random equaliser (the same smooth filter on the mixture and the clean target), so
# no noise keeps one fixed spectrum.

# %%
cfg = short_recipe(
    "configs/enhancement/masking_tiny.yaml", "tutorial_masking", STEPS, OUT
)
model = restore_from(train(cfg)).eval()
print(f"{model.num_parameters():,} parameters")

# %% [markdown]
# ## 2. A test utterance in pink noise at 5 dB
# The noise is scaled so that the clean-to-noise energy ratio is exactly 5 dB.

# %%
test = read_manifest(REPO / "data/tinyspeech/test.jsonl")
clean = load_audio(test[0]["audio_filepath"], 16000)[0]  # (S,)
rng = np.random.default_rng(0)


def mix(wave: torch.Tensor, kind: str, snr_db: float) -> torch.Tensor:
    noise = make_noise(kind, wave.numel(), rng)  # (S,) unit power
    scaled = scale_to_snr(wave.double().numpy(), noise, snr_db)
    return (wave.double() + torch.from_numpy(scaled)).float()


noisy = mix(clean, "pink", 5.0)
with torch.no_grad():
    enhanced = model.enhance(noisy)  # (S,), same length
    spec, spec_lens = model.encoder(noisy[None, None], torch.tensor([noisy.numel()]))
    mask, _ = model.mask_estimator(spec, spec_lens)  # (1, 1, F, T)
wiener = wiener_filter(noisy, 16000)
for name, wave in (("noisy", noisy), ("enhanced", enhanced), ("wiener", wiener)):
    print(
        f"{name:>9}: SI-SDR {float(si_sdr(wave, clean)):5.2f} dB, "
        f"STOI {stoi(clean.numpy(), wave.numpy(), 16000):.3f}"
    )
    save_audio(OUT / f"enhancement_{name}.wav", wave, 16000)
save_audio(OUT / "enhancement_clean.wav", clean, 16000)

# %%
if plt is not None:

    def log_power(wave):
        window = torch.hann_window(512)
        spectrum = torch.stft(wave, 512, 256, window=window, return_complex=True)
        return 10 * torch.log10(spectrum.abs() ** 2 + 1e-10)

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.5), sharey=True)
    panels = [
        ("noisy (5 dB pink)", log_power(noisy)),
        ("mask", mask[0, 0]),
        ("enhanced", log_power(enhanced)),
        ("clean", log_power(clean)),
    ]
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(image, origin="lower", aspect="auto")
        ax.set_title(title)
        ax.set_xlabel("frame")
    axes[0].set_ylabel("frequency bin")
    save_figure(fig, OUT / "enhancement_spectrograms.png")

# %% [markdown]
# ## 3. SI-SDR improvement per SNR, model and Wiener
# Ten test utterances, each mixed with white, pink and brown noise (brown: a kind the
# model never trained on) at 0, 5 and 10 dB. The improvement is SI-SDR(output) -
# SI-SDR(noisy).

# %%
rows = test[::25][:10]
gains: dict = {"model": [], "wiener": []}
for snr in (0.0, 5.0, 10.0):
    per = {"model": [], "wiener": []}
    for row in rows:
        wave = load_audio(row["audio_filepath"], 16000)[0]
        for kind in ("white", "pink", "brown"):
            noisy = mix(wave, kind, snr)
            base = float(si_sdr(noisy, wave))
            with torch.no_grad():
                per["model"].append(float(si_sdr(model.enhance(noisy), wave)) - base)
            per["wiener"].append(
                float(si_sdr(wiener_filter(noisy, 16000), wave)) - base
            )
    for name in gains:
        gains[name].append(sum(per[name]) / len(per[name]))
    print(
        f"{snr:4.0f} dB: model {gains['model'][-1]:5.2f} dB, "
        f"Wiener {gains['wiener'][-1]:5.2f} dB"
    )

if plt is not None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, values in gains.items():
        ax.plot([0, 5, 10], values, "o-", label=name)
    ax.set_xlabel("input SNR (dB)")
    ax.set_ylabel("SI-SDR improvement (dB)")
    ax.legend()
    save_figure(fig, OUT / "enhancement_improvement.png")
