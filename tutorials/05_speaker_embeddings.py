# %% [markdown]
# # 05 · Speaker embeddings: train TitaNet, look at the voice space, verify
#
# **Expected time:** about 2-3 minutes on 2 CPU cores with the default 300 steps
# (`MINISPEECH_TUTORIAL_STEPS=20` makes it a quick smoke run, as the test suite does).
# **Result:** a small TitaNet trained to tell the corpus's 120 training speakers apart,
# then used on 8 speakers it never heard: their embeddings in 2-D (PCA), the scores of
# same-speaker and different-speaker pairs, the DET curve with the EER and minDCF, and
# a verification and an identification. After 300 steps the dev EER is about 6% (the
# full recipe: 3.9%, README).
#
# Run: `python tutorials/05_speaker_embeddings.py [OUT_DIR]`.
#
# The trick of modern speaker recognition (x-vectors, Snyder et al. 2018; TitaNet,
# Koluguri et al. 2022, arXiv:2110.04410): train a classifier over the training
# speakers, then throw the last layer away. The layer before it, pooled over time,
# is the embedding: a fixed-size vector whose direction says who is speaking, for
# any voice, also voices the classifier never saw. Two utterances are compared by
# the cosine of their embeddings.

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
from minispeech.metrics import eer, min_dcf
from minispeech.metrics.eer import roc_points
from minispeech.speaker.scoring import leave_one_out_identification, pair_trials

torch.manual_seed(0)
OUT = output_dir()  # the first argument, $MINISPEECH_TUTORIAL_OUT or tutorials/out
STEPS = training_steps(default=300)  # $MINISPEECH_TUTORIAL_STEPS overrides
plt = pyplot()  # None without matplotlib: no figures, the same numbers

# %% [markdown]
# ## 1. The recipe, shortened
# `configs/speaker/titanet_tiny.yaml`: log-mel features, TitaNet's separable
# convolutions with squeeze-excitation, attentive statistics pooling, a 128-d
# embedding and an additive angular margin (ArcFace) softmax over the speakers.
# Fewer steps here, no audio cache (it pays off over a long run only), one
# validation at the end, and no backend (the recipe fits an LDA on clean and noisy
# training utterances after its last step and fuses each file's pitch with it:
# README, Speaker recognition).

# %%
cfg = short_recipe("configs/speaker/titanet_tiny.yaml", "tutorial_titanet", STEPS, OUT)
print(
    f"{len(cfg['model']['encoder']['jasper'])} TitaNet blocks, pooling:",
    cfg["model"]["decoder"]["pool_mode"],
)

# %% [markdown]
# ## 2. Train
# The same loop as `minispeech train`. The classifier's accuracy is on the training
# speakers; the number that matters, the EER, is on the dev speakers, who are not
# among the classes at all.

# %%
model_file = train(cfg)
model = restore_from(model_file).eval()
print(f"{model.num_parameters():,} parameters, {len(model.labels)} classes")

# %% [markdown]
# ## 3. Embeddings of unheard voices
# Every dev utterance (8 speakers x 25) becomes one vector (E = 128). PCA, from
# scratch: centre the vectors, take the two eigenvectors of their covariance with
# the largest eigenvalues, and project. Utterances of one speaker should gather.

# %%
dev = read_manifest(REPO / "data/tinyspeech/dev.jsonl")
speakers = [row["speaker"] for row in dev]
embs = model.get_embeddings([row["audio_filepath"] for row in dev], batch_size=16)
unit = torch.nn.functional.normalize(embs.double(), dim=1)  # (N, E): cosine = dot
centred = unit - unit.mean(0)
covariance = centred.T @ centred / (len(unit) - 1)  # (E, E)
eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
top2 = eigenvectors[:, -2:].flip(1)  # (E, 2): the two largest first
xy = centred @ top2  # (N, 2)
share = eigenvalues[-2:].sum() / eigenvalues.sum()
print(f"the first two principal components hold {100 * share:.0f}% of the variance")

# %%
if plt is not None:
    fig, ax = plt.subplots(figsize=(6, 5))
    for name in sorted(set(speakers)):
        points = xy[[i for i, s in enumerate(speakers) if s == name]]
        ax.scatter(points[:, 0], points[:, 1], s=12, label=name)
    ax.set_title("dev speakers' embeddings (PCA)")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, OUT / "speaker_pca.png")

# %% [markdown]
# ## 4. Scores, EER and minDCF
# Every pair of dev utterances is a trial: a target when both come from one speaker.
# NeMo's score is (cos + 1) / 2. A threshold accepts the pairs above it; lowering it
# trades misses (rejected targets) for false alarms (accepted non-targets). The
# equal error rate is where the two rates meet; NIST's minDCF weighs them for a
# rare target (p_target = 0.01), so it cares about the low false-alarm end.

# %%
scores, targets = pair_trials(embs, speakers)  # (P,), (P,)
print(
    f"{len(scores)} trials: {int(targets.sum())} target, "
    f"{int((targets == 0).sum())} non-target"
)
print(
    f"EER {100 * eer(scores, targets):.2f}%   "
    f"minDCF(0.01) {min_dcf(scores, targets, p_target=0.01):.3f}"
)
print(
    f"closed-set identification (each utterance against the other utterances "
    f"of the 8 speakers): {100 * leave_one_out_identification(embs, speakers):.1f}%"
)

# %%
if plt is not None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.hist(scores[targets == 1], bins=50, alpha=0.6, density=True, label="target")
    ax1.hist(scores[targets == 0], bins=50, alpha=0.6, density=True, label="non-target")
    ax1.set_xlabel("score (cos + 1) / 2")
    ax1.legend()
    # DET: miss against false alarm, both on a normal-deviate (probit) axis, where
    # two Gaussian score distributions give a straight line
    p_fa, p_hit = roc_points(scores, targets)
    probit = torch.special.ndtri
    low, high = probit(torch.tensor([5e-4, 0.6]))  # the probit of 0 and 1 is infinite
    fa = probit(torch.tensor(p_fa).clamp(1e-6, 1 - 1e-6))
    miss = probit(torch.tensor(1 - p_hit).clamp(1e-6, 1 - 1e-6))
    ax2.plot(fa, miss)
    ticks = [0.001, 0.01, 0.05, 0.2, 0.5]
    ax2.set_xticks(probit(torch.tensor(ticks)), [f"{100 * t:g}%" for t in ticks])
    ax2.set_yticks(probit(torch.tensor(ticks)), [f"{100 * t:g}%" for t in ticks])
    ax2.plot([low, high], [low, high], "k:", linewidth=0.8)  # P_miss = P_fa: the EER
    ax2.set_xlim(low, high)
    ax2.set_ylim(low, high)
    ax2.set_xlabel("false alarm rate")
    ax2.set_ylabel("miss rate")
    ax2.set_title("DET curve (dev, all pairs)")
    save_figure(fig, OUT / "speaker_scores_det.png")

# %% [markdown]
# ## 5. Verify and identify
# `verify_speakers` embeds two files and accepts when NeMo's score is >= 0.7 (the
# default threshold; the EER threshold of this model may sit elsewhere).
# `enroll` averages each known speaker's unit embeddings; `identify` returns the
# closest of them.

# %%
by_speaker: dict = {}
for row in dev:
    by_speaker.setdefault(row["speaker"], []).append(row["audio_filepath"])
names = sorted(by_speaker)
a, b = by_speaker[names[0]][:2]
c = by_speaker[names[1]][0]
for x, y, truth in ((a, b, "same"), (a, c, "different")):
    score = model.similarity(model.get_embedding(x), model.get_embedding(y))
    print(
        f"{truth:>9} speakers: score {score:.3f} -> "
        f"{'same' if model.verify_speakers(x, y) else 'different'}"
    )
enrolled = model.enroll([row for row in dev if row["audio_filepath"] not in (a, c)])
for path, truth in ((a, names[0]), (c, names[1])):
    guess, score = model.identify(path, enrolled)
    print(f"identify {path.split('/')[-1]}: {guess} ({score:.3f}), truly {truth}")
