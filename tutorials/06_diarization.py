# %% [markdown]
# # 06 · Diarization: who spoke when
#
# **Expected time:** about 3 minutes on 2 CPU cores with the default 300 training steps
# (`MINISPEECH_TUTORIAL_STEPS=20` makes it a quick smoke run, as the test suite does).
# **Result:** a simulated three-speaker conversation of voices the models never heard,
# diarized step by step as NeMo's clustering diarizer does it, and three PNGs: the
# voice activity scores, the affinity matrix with its eigengaps, and the reference
# and hypothesis timelines; then the DER with its parts.
#
# Run: `python tutorials/06_diarization.py [OUT_DIR]`.
#
# Offline diarization without a model trained for it: find the speech (VAD), cut it
# into short windows at several lengths, embed each window with a speaker model
# (tutorial 05), and cluster the embeddings. The number of speakers is not given:
# NME-SC (Park et al. 2019, arXiv:2003.02405) reads it off the eigenvalues of a
# graph built from the cosine affinities.

# %%
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
from minispeech.core.model import restore_from
from minispeech.diarization import clustering, pipeline
from minispeech.diarization.rttm import to_turns
from minispeech.diarization.simulate import conversations
from minispeech.diarization.vad import energy_frame_probs, energy_vad
from minispeech.metrics import der

torch.manual_seed(0)
OUT = output_dir()  # the first argument, $MINISPEECH_TUTORIAL_OUT or tutorials/out
STEPS = training_steps(default=300)  # $MINISPEECH_TUTORIAL_STEPS overrides
plt = pyplot()  # None without matplotlib: no figures, the same numbers

# %% [markdown]
# ## 1. A speaker model
# The TitaNet recipe, shortened as in tutorial 05. The full recipe (9.6 minutes)
# gives the README's DER; a short run already separates most voices.

# %%
cfg = short_recipe(
    "configs/speaker/titanet_tiny.yaml", "tutorial_diarization_titanet", STEPS, OUT
)
speaker_model = restore_from(train(cfg)).eval()

# %% [markdown]
# ## 2. A conversation
# Utterances of three dev speakers placed turn by turn, with gaps drawn from
# -0.4 to 0.8 s: a negative gap overlaps the previous turn. The exact extent of every
# turn is the reference (what an RTTM file would hold).

# %%
dev = read_manifest(REPO / "data/tinyspeech/dev.jsonl")
for row in dev:
    row["audio_filepath"] = str(REPO / "data/tinyspeech" / row["audio_filepath"])
name, wave, reference = conversations(dev, 1, seed=3, n_speakers=(3, 3))[0]
wave = torch.from_numpy(wave)  # (S,)
rate = speaker_model.sample_rate
ref_turns = to_turns(reference)  # [(start, end, speaker)]
print(
    f"{name}: {wave.numel() / rate:.1f} s, {len(ref_turns)} turns of "
    f"{len({s for _, _, s in ref_turns})} speakers"
)

# %% [markdown]
# ## 3. Voice activity
# The energy VAD: frame log-energy against a noise floor read from the recording
# itself, a score in [0, 1] every 10 ms, then NeMo's post-processing (hysteresis
# with onset/offset thresholds, padding, dropping short speech, filling short gaps).
# `minispeech diarize --vad MODEL` uses a learned MarbleNet-style VAD instead
# (configs/diarization/marblenet_vad_tiny.yaml).

# %%
scores = energy_frame_probs(wave, rate)  # (T,) at 10 ms
regions = energy_vad(wave, sample_rate=rate)  # [(start, end)] seconds
speech = sum(b - a for a, b in regions)
print(f"VAD: {len(regions)} speech regions, {speech:.1f} s of speech")

# %%
if plt is not None:
    fig, ax = plt.subplots(figsize=(10, 2.5))
    ax.plot(torch.arange(len(scores)) * 0.01, scores, linewidth=0.8, label="score")
    for a, b in regions:
        ax.axvspan(a, b, color="tab:green", alpha=0.2)
    for a, b, _ in ref_turns:
        ax.plot([a, b], [1.05, 1.05], color="black", linewidth=3)
    ax.set_xlabel("seconds")
    ax.set_title("energy VAD score, detected speech (green), reference turns (black)")
    save_figure(fig, OUT / "diarization_vad.png")

# %% [markdown]
# ## 4. Windows at several scales, embeddings, affinity
# Every speech region is cut into windows of 1.5, 1.25, 1.0, 0.75 and 0.5 s (half
# overlapping). The shortest scale sets the time resolution: each of its segments
# takes, at every other scale, the window whose centre is nearest. The affinity of
# two base segments is the weighted sum over scales of their embeddings' cosine.

# %%
segments = pipeline.multiscale_segments(regions, pipeline.SCALES)  # scales x windows
base = segments[-1]
embs = pipeline.mapped_embeddings(wave, segments, speaker_model)  # scales x (N, E)
affinity = clustering.multiscale_affinity(
    [clustering.cosine_affinity(e) for e in embs], list(pipeline.WEIGHTS)
)  # (N, N)
print(f"{len(base)} base segments; windows per scale: {[len(s) for s in segments]}")

# %% [markdown]
# ## 5. How many speakers? NME-SC
# Keep, for every segment, only its p most similar segments (a graph), and look at
# the eigenvalues of the graph's Laplacian: k well-separated speakers give k
# eigenvalues near zero and then a jump (the eigengap). NME-SC picks p where the
# largest gap, normalised by the largest eigenvalue, is clearest relative to p.

# %%
count, p_hat = clustering.nmesc(
    affinity, max_num_speakers=8, max_rp_threshold=pipeline.MAX_RP_THRESHOLD
)
lambdas = torch.linalg.eigvalsh(
    clustering.laplacian(clustering.knn_graph(affinity, p_hat))
)
print(
    f"p_hat = {p_hat}: {count} speakers (the reference has "
    f"{len({s for _, _, s in ref_turns})})"
)

# %%
labels = pipeline.cluster(embs)  # (N,) one speaker label per base segment
hyp_turns = to_turns(pipeline.labels_to_turns(base, labels.tolist()))

if plt is not None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    order = torch.argsort(labels, stable=True)  # segments grouped by cluster
    ax1.imshow(affinity[order][:, order], cmap="viridis")
    ax1.set_title("affinity, segments grouped by cluster")
    ax2.plot(range(1, 11), lambdas[:10], "o-")
    ax2.axvline(count + 0.5, color="tab:red", linestyle=":", label="eigengap")
    ax2.set_xlabel("eigenvalue index")
    ax2.set_ylabel("Laplacian eigenvalue")
    ax2.legend()
    save_figure(fig, OUT / "diarization_affinity.png")

# %% [markdown]
# ## 6. Turns and the diarization error rate
# Consecutive base segments of one speaker merge into turns. DER is missed speech
# plus false alarm plus speaker confusion, over the reference speech, after the best
# one-to-one mapping of hypothesis to reference speakers (the Hungarian algorithm).
# A collar of 0.25 s around every reference boundary is not scored (NIST md-eval's
# convention, also NeMo's); overlapped speech is scored, and since the hypothesis
# has one speaker at a time, every overlap costs at least one missed speaker.

# %%
for collar in (0.25, 0.0):
    result = der({name: ref_turns}, {name: hyp_turns}, collar=collar)
    print(
        f"collar {collar:.2f}: DER {100 * result.der:.2f}% = miss "
        f"{100 * result.miss:.2f}% + false alarm {100 * result.false_alarm:.2f}% + "
        f"confusion {100 * result.confusion:.2f}%"
    )

if plt is not None:
    # colour each hypothesis speaker as the reference speaker it was mapped to
    to_ref = {h: r for r, h in result.mapping[name].items()}
    names = sorted({s for _, _, s in ref_turns})
    fig, ax = plt.subplots(figsize=(10, 2.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, turns in ((1, ref_turns), (0, hyp_turns)):
        for a, b, s in turns:
            s = to_ref.get(s, s) if row == 0 else s
            colour = colours[names.index(s) % 10] if s in names else "gray"
            ax.barh(row, b - a, left=a, color=colour)
    ax.set_yticks([0, 1], ["hypothesis", "reference"])
    ax.set_xlabel("seconds (one colour per speaker; gray: an unmapped one)")
    save_figure(fig, OUT / "diarization_timeline.png")
