# %% [markdown]
# # 10 · SpeechLM: a small language model that listens
#
# **Expected time:** about 7-10 minutes on 2 CPU cores with the default 300 steps per
# stage (measured: 9.5 min, with a 300-step run of the ASR recipe when the main job's
# model file is not there; the LM now writes up to 64 word pieces an answer, where the
# earlier version of this tutorial wrote 24 of its own and took 8.2 min on a slow
# machine). `MINISPEECH_TUTORIAL_STEPS=20` makes it a quick smoke run,
# as the test suite does. **Result:** a SALM-style model built in two stages: a chat
# language model trained on text, then a modality adapter that turns the frozen ASR
# encoder's frames into vectors the LM reads in place of an `<|audio|>` placeholder.
# You see the prompt, the spliced embedding sequence and its mask, answers to several
# questions about one recording, and the silence ablation that shows whether the
# answers come from the audio. The full recipes (`configs/speechlm/lm_tiny.yaml`,
# `salm_tiny.yaml`) train longer and answer better (README: 78.0% against the
# majority's 46.5%; this short run: 48.8% against 45.2% on its sample, 36.9% with
# silence).
#
# Run: `python tutorials/10_speechlm.py [OUT_DIR]`.
#
# SALM (Chen et al. 2024) augments a text LM with audio without retraining it: an ASR
# encoder hears, a small adapter translates its frames into the LM's embedding space,
# and the frames are spliced into the prompt where the placeholder token was. Only the
# adapter learns; the loss covers the answer tokens only.

# %%
import torch
from common import REPO, output_dir, pyplot, save_figure, short_recipe, training_steps

from minispeech import train
from minispeech.core.model import restore_from
from minispeech.speechlm.scoring import qa_metrics, qa_stats

torch.manual_seed(0)
OUT = output_dir()  # the first argument, $MINISPEECH_TUTORIAL_OUT or tutorials/out
STEPS = training_steps(default=300)  # $MINISPEECH_TUTORIAL_STEPS overrides
plt = pyplot()  # None without matplotlib: no figures, the same numbers

# %% [markdown]
# ## 1. The ears: the encoder of an ASR model file
# The main ASR job (`configs/asr/conformer_ctc_tiny.yaml`) if you ran it, else a short
# run of the same recipe (which hears much worse).

# %%
asr_path = REPO / "experiments/conformer_ctc_tiny/conformer_ctc_tiny.nemo"
if not asr_path.exists():
    asr_cfg = short_recipe("configs/asr/conformer_ctc_tiny.yaml", "tut_asr", STEPS, OUT)
    asr_path = train(asr_cfg)
print("ASR model:", asr_path)

# %% [markdown]
# ## 2. Stage 1: the language model, on text
# The question-answer chats of `data/tinyspeech_qa` with each recording's transcript
# where the audio will go: the LM learns the questions and how an answer follows from
# the words. Its validation answers dev questions from the transcripts: the accuracy
# a perfect adapter would allow. The LM writes in the ASR model's own word pieces (its
# SentencePiece model, taken from the model file), so in stage 2 the encoder's CTC
# posteriors over those pieces can be handed to it as "soft tokens".

# %%
asr_pieces = OUT / "experiments" / "asr_pieces"
restore_from(asr_path).tokenizer.save(asr_pieces)
lm_cfg = short_recipe("configs/speechlm/lm_tiny.yaml", "tut_lm", STEPS, OUT)
lm_cfg["model"]["tokenizer"]["dir"] = str(asr_pieces)
lm_path = train(lm_cfg)

# %% [markdown]
# ## 3. Stage 2: the adapter
# The ASR encoder and the LM are frozen (`freeze: ["asr.*", "lm.*"]`); the adapter
# (a 2-layer Conformer and a projection to the LM width) and LoRA on the LM's
# attention are all that trains. The encoder's frames are first compressed to one per
# word piece its CTC head hears (blank runs dropped), and each starts as a soft token:
# the LM embeddings of the pieces weighted by the CTC posteriors (LegoSLM), so the LM
# reads something like text from the first step; the adapter, whose projection starts
# at zero, adds a learned correction from the encoder's output and its first layer's
# input (a CTC encoder forgets the voice on its way up). One "voice" frame goes first:
# the recording's mean and standard deviation mapped to an expected LM token, which the
# LM learned to read for "is the speaker male or female" (in stage 1 a voice token,
# `<|female|>` or `<|male|>`, stood before the transcript). Besides the answers' loss,
# half a CTC loss reads each frame as LM tokens against the transcript.

# %%
salm_cfg = short_recipe("configs/speechlm/salm_tiny.yaml", "tut_salm", STEPS, OUT)
salm_cfg["model"].update(asr_model=str(asr_path), lm_model=str(lm_path))
model = restore_from(train(salm_cfg)).eval()
trainable = model.num_parameters(trainable_only=True)
print(f"{model.num_parameters():,} parameters, {trainable:,} trained")

# %% [markdown]
# ## 4. The prompt, the splice and the mask
# The question goes into the prompt format; the chat tokenizer wraps it in a user turn
# with one `<|audio|>` id. The model replaces that one embedding by the recording's
# adapted frames, so the LM's input is longer than the prompt by T'' - 1 positions.

# %%
dev = model.build_dataset({"manifest_filepath": salm_cfg["model"]["validation_ds"][
    "manifest_filepath"]})  # fmt: skip
item = dev[0]
tok = model.tokenizer
print("prompt ids:", item["prompt_ids"])
print("audio placeholder id:", tok.audio_id, "| question:", dev.rows[0]["prompt"])
batch = model.collate([dev[k] for k in range(4)])
with torch.no_grad():
    frames, frame_lens = model.perceive(batch["audio"], batch["audio_lens"])
    spliced = [
        model.splice(p, frames[b, : frame_lens[b]])
        for b, p in enumerate(batch["prompt_ids"])
    ]
print("frames per recording:", frame_lens.tolist())
print("LM input lengths:", [s.size(0) for s in spliced])
if plt is not None:  # left padding for generation: real positions are True
    longest = max(s.size(0) for s in spliced)
    mask = torch.zeros(len(spliced), longest)
    for b, s in enumerate(spliced):
        at = batch["prompt_ids"][b].index(tok.audio_id)
        start = longest - s.size(0)
        mask[b, start:] = 1
        mask[b, start + at : start + at + int(frame_lens[b])] = 2
    fig, ax = plt.subplots(figsize=(10, 2.5))
    ax.imshow(mask, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xlabel("LM position (0 padding, 1 text tokens, 2 audio frames)")
    ax.set_ylabel("item")
    save_figure(fig, OUT / "speechlm_splice_mask.png")

# %% [markdown]
# ## 5. Questions about one recording

# %%
path = dev.rows[0]["audio_filepath"]
questions = [
    "what does the speaker say",
    "what day is mentioned",
    "what is the first word",
    "how many words are spoken",
    "is the speaker male or female",
]
for question, answer in zip(questions, model.answer([path] * 5, questions)):
    print(f"{question:32} -> {answer}")

# %% [markdown]
# ## 6. Does it listen? The silence ablation
# The same questions with every recording replaced by silence of the same length: an
# LM that ignored the audio would score the same; a model that listens falls to
# about the majority-answer baseline (always "none" for "what day is mentioned").

# %%
rows = list(range(0, len(dev), 19))[:96]  # 19: every question type comes up
results = {}
for ablation in ("none", "silence"):
    model.ablation = ablation
    stats = {}
    for start in range(0, len(rows), 32):
        batch = model.collate([dev[k] for k in rows[start : start + 32]])
        with torch.no_grad():
            hyps = model.answer_batch(
                batch["audio"], batch["audio_lens"], batch["prompt_ids"]
            )
        for key, value in qa_stats(batch["type"], batch["answer"], hyps).items():
            stats[key] = (
                stats.get(key, 0 if not isinstance(value, list) else []) + value
            )
    results[ablation] = qa_metrics(stats)
model.ablation = "none"
for ablation, metrics in results.items():
    print(
        f"{ablation:8} accuracy {metrics['val_accuracy']:.1%} "
        f"(majority baseline {metrics['val_majority']:.1%})"
    )
