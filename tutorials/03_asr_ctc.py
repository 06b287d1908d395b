# %% [markdown]
# # 03 · Train a Conformer-CTC recognizer and look inside it
#
# **Expected time:** about 2 minutes on 2 CPU cores with the default 300 steps (4.5 on
# a slower machine short of CPU)
# (`MINISPEECH_TUTORIAL_STEPS=20` makes it a short smoke run, as the test suite
# does).
# **Result:** a small Conformer-CTC model trained on the bundled tinyspeech corpus, its
# dev WER (about 76% greedy after 300 steps, 37% with a beam that spells only the
# training text's words; the full recipe reaches the README's numbers), and two PNGs:
# the CTC posteriors over the spectrogram, and the forced alignment of the transcript
# against espeak-ng's own word timings.
#
# Run: `python tutorials/03_asr_ctc.py [OUT_DIR]`.
#
# CTC (Graves et al. 2006) lets the encoder emit one distribution over V = 64 word
# pieces + blank for every output frame (40 ms here). The loss sums over every
# frame-level path that collapses (merge repeats, drop blanks) to the transcript. The
# pieces are a SentencePiece BPE vocabulary (Sennrich et al. 2016) learned from the
# training text (the letters, "▁the", "▁th", "day", ...; "▁" starts a word): the recipe
# trains it on first use. On this corpus they beat characters by far (README: dev WER
# 18.9% against 41.0% at the same steps): fewer labels a second to place (13 against
# 19), and each one a larger, more audible unit.

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
from minispeech.asr import ctc_forced_align_single, ctc_greedy_decode, word_spans
from minispeech.asr.ngram_lm import NGramLM
from minispeech.core.model import restore_from

torch.manual_seed(0)
OUT = output_dir()  # the first argument, $MINISPEECH_TUTORIAL_OUT or tutorials/out
STEPS = training_steps(default=300)  # $MINISPEECH_TUTORIAL_STEPS overrides
plt = pyplot()  # None without matplotlib: no figures, the same numbers

# %% [markdown]
# ## 1. The recipe
# The main job's YAML, shortened: fewer steps, and no validation until the end.
# Every key maps to a constructor argument; `_target_` names the class. Its `interctc`
# section adds intermediate CTC (Lee & Watanabe 2021): the same head also reads the
# 2nd encoder layer's output, and that layer's CTC loss weighs 0.3 of the total, which
# pushes the lower layers towards the labels early (dev WER 44.9% -> 41.0% for the
# full recipe with characters). Decoding still reads the last layer only.

# %%
cfg = short_recipe("configs/asr/conformer_ctc_tiny.yaml", "tutorial_ctc", STEPS, OUT)
print(cfg["model"]["tokenizer"])
print(cfg["model"]["encoder"])
print(cfg["model"]["interctc"])

# %% [markdown]
# ## 2. Train
# `train` is the same loop `minispeech train` runs: bucketed batches, AdamW with warmup
# and cosine decay, validation, checkpoints and an exported model file.

# %%
model_file = train(cfg)
model = restore_from(model_file).eval()
print(f"{model.num_parameters():,} parameters -> {model_file}")

# %%
dev = read_manifest(REPO / "data/tinyspeech/dev.jsonl")[:40]
hyps = model.transcribe([row["audio_filepath"] for row in dev])
print(
    f"dev WER on 40 utterances after {STEPS} steps: "
    f"{100 * wer([r['text'] for r in dev], hyps):.1f}%"
)
for row, hyp in list(zip(dev, hyps))[:3]:
    print(f"  REF: {row['text']}\n  HYP: {hyp}")

# %% [markdown]
# ## 3. CTC posteriors
# Each output frame puts its mass on the blank or on one piece: the "peaky"
# behaviour of CTC. Pieces fire in short spikes, blanks fill the rest.

# %%
row = dev[0]
audio, sr = model.load_inputs([row["audio_filepath"]])[0], model.sample_rate
lens = torch.tensor([audio.numel()])
with torch.no_grad():
    feats, feat_lens = model.preprocessor(audio[None], lens)  # (1, M, T)
    log_probs, enc_lens = model(audio[None], lens)  # (1, T', V)
probs = log_probs[0].exp()  # (T', V)
labels = model.tokenizer.tokens + ["_"]  # "_" marks the blank
ids = ctc_greedy_decode(log_probs, enc_lens, model.blank)[0]
print("greedy:", model.tokenizer.decode(ids))

# %% [markdown]
# ## 4. Forced alignment
# Viterbi over the CTC trellis gives each piece of the (known) transcript a run of
# frames; grouping pieces into words (a new word at each "▁") gives word times.
# espeak-ng reported its own word starts while synthesizing, so we can check the
# alignment against the truth.

# %%
tokens = model.tokenizer.encode(row["text"])
alignment = ctc_forced_align_single(log_probs[0], tokens, blank=model.blank)
frame_s = model.frame_shift / sr
words = word_spans(alignment.spans, model.tokenizer.tokens, frame_s)
errors = []
for ours, (word, start, end) in zip(words, row["words"]):
    errors.append(abs(ours.start - start))
    print(
        f"{word:>10}: aligned {ours.start:5.2f}-{ours.end:5.2f} s, "
        f"espeak {start:5.2f}-{end:5.2f} s"
    )
print(
    f"mean |start error| = {1000 * sum(errors) / len(errors):.0f} ms "
    f"(one frame is {1000 * frame_s:.0f} ms)"
)

# %%
if plt is not None:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    seconds = audio.numel() / sr
    ax1.imshow(
        feats[0], origin="lower", aspect="auto", extent=[0, seconds, 0, feats.shape[1]]
    )
    ax1.set_title(f"log-mel of: {row['text']}")
    ax1.set_ylabel("mel")
    times = torch.arange(probs.shape[0]) * frame_s
    for v in probs.max(0).values.argsort(descending=True)[:8].tolist():
        ax2.plot(times, probs[:, v], label=repr(labels[v]))
    ax2.set_xlabel("seconds")
    ax2.set_ylabel("posterior")
    ax2.legend(ncol=4, fontsize=8)
    save_figure(fig, OUT / "ctc_posteriors.png")

    fig, ax = plt.subplots(figsize=(10, 2.5))
    for ours, (word, start, end) in zip(words, row["words"]):
        ax.barh(1, ours.end - ours.start, left=ours.start, color="tab:blue", alpha=0.6)
        ax.text(ours.start, 1.45, word, fontsize=8)
        ax.barh(0, end - start, left=start, color="tab:orange", alpha=0.6)
    ax.set_yticks([0, 1], ["espeak-ng", "CTC alignment"])
    ax.set_xlabel("seconds")
    save_figure(fig, OUT / "ctc_alignment.png")

# %% [markdown]
# ## 5. A beam that spells only known words
# Greedy decoding picks the best piece at every frame, so a word can come out
# misspelled ("katchen" for "kitchen"). The corpus has a closed vocabulary: a prefix
# beam search (Hannun et al. 2014) that keeps a hypothesis only while its unfinished
# word begins a word of the training text (a lexicon), fused with a 3-gram LM of
# that text, turns most misspellings into words. The model's `decoding` section
# chooses the decoder at every call, so switching it needs no retraining.

# %%
lm = NGramLM.from_manifest(REPO / "data/tinyspeech/train.jsonl", order=3)
arpa = str(lm.save(OUT / "train3.arpa"))
model.decoding = {
    "strategy": "beam",
    "beam_size": 16,
    "lm_path": arpa,  # shallow fusion: + alpha ln p_LM + beta per word
    "lm_alpha": 0.3,  # the weights the README's dev search chose
    "lm_beta": 1.0,
    "lexicon": arpa,  # the LM's words are the lexicon
}
beam_hyps = model.transcribe([row["audio_filepath"] for row in dev])
print(
    f"dev WER on the same 40 utterances: greedy "
    f"{100 * wer([r['text'] for r in dev], hyps):.1f}%, beam + lexicon + 3-gram "
    f"{100 * wer([r['text'] for r in dev], beam_hyps):.1f}%"
)
for row, hyp, beam_hyp in list(zip(dev, hyps, beam_hyps))[:3]:
    print(f"  REF:    {row['text']}\n  greedy: {hyp}\n  beam:   {beam_hyp}")
