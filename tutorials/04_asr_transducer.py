# %% [markdown]
# # 04 · Transducers: the T x U lattice, alignments, greedy and beam search
#
# **Expected time:** about 2 minutes on 2 CPU cores with the default 300 steps
# (`MINISPEECH_TUTORIAL_STEPS=20` makes it a quick smoke run, as the test suite does).
# **Result:** a small FastConformer-Transducer trained on tinyspeech, a PNG of the
# alignment posterior over its T x U lattice, and greedy vs beam-search transcripts.
#
# Run: `python tutorials/04_asr_transducer.py [OUT_DIR]`.
#
# An RNN-T (Graves 2012, arXiv:1211.3711) scores every pair (frame t, labels so far u):
# the joint network combines the encoder's f_t and the prediction network's g_u into a
# distribution over V = 28 characters + blank. A path through the lattice moves right
# on a blank (next frame) and up on a label; the loss sums over all such paths.

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

from minispeech import read_manifest, train, wer
from minispeech.asr import rnnt_beam_search, rnnt_greedy_decode
from minispeech.core.model import restore_from

torch.manual_seed(0)
OUT = output_dir()  # the first argument, $MINISPEECH_TUTORIAL_OUT or tutorials/out
STEPS = training_steps(default=300)  # $MINISPEECH_TUTORIAL_STEPS overrides
plt = pyplot()  # None without matplotlib: no figures, the same numbers

# %% [markdown]
# ## 1. Train briefly
# The recipe `configs/asr/fastconformer_transducer_tiny.yaml`, with fewer steps.

# %%
cfg = short_recipe(
    "configs/asr/fastconformer_transducer_tiny.yaml", "tutorial_rnnt", STEPS, OUT
)
model = restore_from(train(cfg)).eval()
dev = read_manifest(REPO / "data/tinyspeech/dev.jsonl")[:40]
hyps = model.transcribe([row["audio_filepath"] for row in dev])
print(
    f"dev WER on 40 utterances after {STEPS} steps: "
    f"{100 * wer([r['text'] for r in dev], hyps):.1f}%"
)

# %% [markdown]
# ## 2. The lattice of one utterance
# `logits (T', U+1, V)`: for every frame and every prefix of the transcript. The
# forward variable alpha(t, u) is the probability of having emitted u labels by frame t
# (Graves 2012, Eq. 16); beta(t, u) that of finishing from there (Eq. 18). Their product
# over the total is the posterior of the path visiting (t, u).

# %%
row = dev[0]
audio = model.load_inputs([row["audio_filepath"]])[0]
tokens = torch.tensor(model.tokenizer.encode(row["text"]))
with torch.no_grad():
    enc, enc_lens = model(audio[None], torch.tensor([audio.numel()]))  # (1, D, T')
    pred, _ = model.decoder(tokens[None])  # (1, U+1, H)
    logits = model.joint(enc.transpose(1, 2), pred)[0]  # (T', U+1, V)
    logp = logits.double().log_softmax(-1)  # (T', U+1, V)
n_frames, n_labels = logp.shape[0], tokens.numel()
blank = logp[:, :, model.blank]  # (T', U+1)
index = tokens[None, :, None].expand(n_frames, -1, 1)  # (T', U, 1)
emit = logp[:, :-1].gather(2, index)[..., 0]  # (T', U)

alpha = torch.full((n_frames, n_labels + 1), float("-inf"), dtype=torch.float64)
beta = alpha.clone()
for t in range(
    n_frames
):  # alpha(t,u) = logaddexp(alpha(t-1,u) + blank, alpha(t,u-1) + emit)
    for u in range(n_labels + 1):
        if t == 0 and u == 0:
            alpha[t, u] = 0.0
            continue
        a = alpha[t - 1, u] + blank[t - 1, u] if t > 0 else torch.tensor(float("-inf"))
        b = alpha[t, u - 1] + emit[t, u - 1] if u > 0 else torch.tensor(float("-inf"))
        alpha[t, u] = torch.logaddexp(a, b)
for t in reversed(range(n_frames)):
    for u in reversed(range(n_labels + 1)):
        if t == n_frames - 1 and u == n_labels:
            beta[t, u] = blank[t, u]
            continue
        a = (
            beta[t + 1, u] + blank[t, u]
            if t + 1 < n_frames
            else torch.tensor(float("-inf"))
        )
        b = beta[t, u + 1] + emit[t, u] if u < n_labels else torch.tensor(float("-inf"))
        beta[t, u] = torch.logaddexp(a, b)
log_likelihood = alpha[-1, -1] + blank[-1, -1]
print(f"ln p(y|x) = {log_likelihood:.3f} (forward) = {beta[0, 0]:.3f} (backward)")
posterior = (alpha + beta - log_likelihood).exp()  # (T', U+1)

# %% [markdown]
# ## 3. Greedy and beam search
# Greedy takes the best symbol at each step, at most `max_symbols` labels per frame;
# beam search (Graves 2012, Sec. 2.6) keeps the `beam_size` best label sequences.

# %%
enc_t = enc.transpose(1, 2)  # (1, T', D)
greedy = model.tokenizer.decode(
    rnnt_greedy_decode(model.decoder, model.joint, enc_t, enc_lens)[0]
)
beams = rnnt_beam_search(model.decoder, model.joint, enc_t[0], beam_size=4)
print(f"REF:    {row['text']}\nGREEDY: {greedy}")
for hyp in beams[:3]:
    print(
        f"BEAM:   {model.tokenizer.decode(list(hyp.tokens))}  (ln p = {hyp.score:.2f})"
    )

# %%
if plt is not None:
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.imshow(posterior.T, origin="lower", aspect="auto", cmap="magma")
    ax.set_yticks(
        range(n_labels + 1), ["<s>"] + [model.tokenizer.tokens[i] for i in tokens]
    )
    ax.set_xlabel("encoder frame t (80 ms)")
    ax.set_ylabel("labels emitted u")
    ax.set_title(f"alignment posterior over the T x U lattice: {row['text']}")
    save_figure(fig, OUT / "rnnt_lattice.png")
