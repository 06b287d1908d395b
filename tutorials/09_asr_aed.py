# %% [markdown]
# # 09 · Attention encoder-decoder ASR: one model, told what to write by a prompt
#
# **Expected time:** about 3 minutes on 2 CPU cores with the default 300 training steps
# (measured: 2.5 min; `MINISPEECH_TUTORIAL_STEPS=20` makes it a quick smoke run, as the
# test suite does).
# **Result:** a small Canary-style model (FastConformer encoder + Transformer decoder)
# trained briefly: its prompt, teacher forcing, where the decoder looks in the audio
# while it writes (a cross-attention map), greedy against beam search, and the spoken
# (`<|nopnc|>`) and written (`<|pnc|>`) outputs of the same model. The full recipe
# (`configs/asr/fastconformer_aed_tiny.yaml`, 1,800 steps) is much better; 300 steps
# only begin to align. Starting the encoder from a trained CTC model
# (`configs/asr/conformer_aed_tiny.yaml`, top-level `init_from_nemo_model`) is better
# still: the decoder then learns on frames that already tell words apart.
#
# Run: `python tutorials/09_asr_aed.py [OUT_DIR]`.
#
# CTC and transducers emit one output per audio frame. An attention encoder-decoder
# (Chan et al. 2016, "Listen, Attend and Spell"; Vaswani et al. 2017) instead writes
# the text token by token like a language model, and at every token it attends over
# all encoder frames (cross-attention) to find the audio it needs. Canary and Whisper
# start the decoder with a prompt of special tokens that say what to do: which
# language, transcribe or translate, with punctuation and capitals or without.

# %%
import torch
from common import output_dir, pyplot, save_figure, short_recipe, training_steps

from minispeech import train, wer
from minispeech.core.model import restore_from

torch.manual_seed(0)
OUT = output_dir()  # the first argument, $MINISPEECH_TUTORIAL_OUT or tutorials/out
STEPS = training_steps(default=300)  # $MINISPEECH_TUTORIAL_STEPS overrides
plt = pyplot()  # None without matplotlib: no figures, the same numbers

# %% [markdown]
# ## 1. Train briefly, on both forms of the text
# Every corpus line has the spoken form (`text`: "call bob at seven thirty") and the
# written form (`text_pnc`: "Call Bob at 7:30."). Each training item draws one: half
# of them train the `<|pnc|>` prompt on the written form, the rest `<|nopnc|>` on the
# spoken form. One BPE tokenizer (trained on both forms on first use) serves both.

# %%
cfg = short_recipe(
    "configs/asr/fastconformer_aed_tiny.yaml", "tutorial_aed", STEPS, OUT
)
model = restore_from(train(cfg)).eval()
tok = model.tokenizer
pieces = tok.tokens  # id -> piece
print(f"{model.num_parameters():,} parameters")

# %% [markdown]
# ## 2. The prompt
# Five special tokens, each with its own id in the aggregate vocabulary (the special
# tokens first, then the English BPE pieces at an offset).

# %%
for pnc in (False, True):
    ids = model.task_prompts[pnc]
    print([pieces[i] for i in ids], ids)

# %% [markdown]
# ## 3. Teacher forcing
# In training the decoder reads prompt + text and predicts each next token; the loss
# counts only the text tokens and `<|endoftext|>` (the prompt is given, not predicted).
# The log-probability of each reference token shows how sure the model is.

# %%
dev = model.build_dataset(cfg["model"]["validation_ds"])
item = dev[3]
batch = model.collate([item])
with torch.no_grad():
    log_probs = model(
        batch["audio"],
        batch["audio_lens"],
        batch["transcript"][:, :-1],
        batch["transcript_lens"] - 1,
    )  # (1, U-1, V): position j predicts token j+1
targets = batch["transcript"][0, 1:]
first = len(model.train_prompt) - 1  # the first prediction that is scored
scores = log_probs[0, first:].gather(-1, targets[first:, None])[:, 0]
print(item["text"])
for token, score in zip(targets[first:].tolist(), scores.tolist()):
    print(f"  {pieces[token]:>16}  log p = {score:6.2f}")

# %% [markdown]
# ## 4. Where the decoder looks
# `cross_attention` runs the teacher-forced pass and returns, per decoder layer, the
# attention weights (heads, tokens, encoder frames). Averaged over heads, a trained
# model's map is a rough diagonal: each token looks at the frames where its word is
# spoken. The corpus's word timings (from espeak-ng) are drawn for comparison; one
# encoder frame is 80 ms (8x subsampling of 10 ms features).

# %%
weights = model.cross_attention(
    batch["audio"], batch["audio_lens"], batch["transcript"]
)
last = weights[-1][0].mean(0)  # (U, T') averaged over heads
print(f"cross-attention: {len(weights)} layers of {tuple(weights[-1].shape)}")
labels = [pieces[i] for i in batch["transcript"][0].tolist()]
if plt is not None:
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.imshow(last, origin="lower", aspect="auto", cmap="magma")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    frame_s = 0.08
    row = dev.rows[3]
    for word, start, end in row.get("words", []):
        ax.axvspan(start / frame_s, end / frame_s, ymax=0.03, color="cyan", alpha=0.6)
        ax.text(start / frame_s, -1.2, word, color="k", fontsize=7)
    ax.set_xlabel("encoder frame (80 ms)")
    ax.set_title("cross-attention of the last decoder layer (mean over heads)")
    save_figure(fig, OUT / "aed_cross_attention.png")

# %% [markdown]
# ## 5. Greedy against beam search
# Greedy takes the best token at every step; beam search keeps the 4 best prefixes
# (scored by log-probability with a length penalty) and usually finds a more
# probable transcript. Both reuse the decoder's key/value cache, so each step costs
# one new token's work.

# %%
paths = [row["audio_filepath"] for row in dev.rows[:16]]
refs = [row["text"] for row in dev.rows[:16]]
greedy = model.transcribe(paths, beam_size=1)
beam = model.transcribe(paths, beam_size=4)
print(f"16 dev utterances: greedy WER {wer(refs, greedy):.1%}, beam 4 ", end="")
print(f"{wer(refs, beam):.1%}")

# %% [markdown]
# ## 6. One model, two outputs
# The same audio and weights; only the fifth prompt token changes.

# %%
written = model.transcribe(paths[:4], pnc=True)
for row, spoken, pnc in zip(dev.rows[:4], greedy[:4], written):
    print(f"reference  {row['text_pnc']}\n  <|nopnc|> {spoken}\n  <|pnc|>   {pnc}")
