# %% [markdown]
# # 02 · Inside the Conformer encoder
#
# **Expected time:** about 5 s on one CPU core (no GPU, no downloads).
# **Result:** three PNGs (features before/after subsampling, an attention map with its
# padding and limited-context masks, the encoder output) in the output folder, and
# printed shapes, parameter counts and a padding-invariance check (below 1e-5).
#
# Run it as a script, `python tutorials/02_nn_conformer.py [OUT_DIR]`, or open it as a
# notebook with jupytext. The output folder is the first argument, else
# `$MINISPEECH_TUTORIAL_OUT`, else `tutorials/out/`. Without matplotlib it still runs.
#
# We follow one batch `(B, M, T)` of features through the three stages of
# `minispeech.nn.ConformerEncoder` (Gulati et al. 2020, arXiv:2005.08100): convolution
# subsampling to `(B, T', D)`, Conformer blocks, and the output `(B, D, T')`.

# %%
import math

import torch
from common import output_dir, pyplot, save_figure

from minispeech.audio import MelSpectrogram
from minispeech.nn import ConformerEncoder
from minispeech.nn.attention import padding_mask, self_attention_mask

torch.manual_seed(0)
torch.set_num_threads(1)
OUT = output_dir()  # the first argument, $MINISPEECH_TUTORIAL_OUT or tutorials/out
plt = pyplot()  # None without matplotlib: no figures, the same numbers


# %% [markdown]
# ## 1. A padded batch of features
# Two synthetic "utterances" of 2.0 s and 1.2 s: rising tones plus noise, zero-padded
# to the same length. Lengths travel beside the tensors (`audio_lens`, `feat_lens`).

# %%
sr = 16000
lengths = [int(2.0 * sr), int(1.2 * sr)]
audio = torch.zeros(2, max(lengths))
for b, n in enumerate(lengths):
    t = torch.arange(n) / sr
    audio[b, :n] = torch.sin(2 * math.pi * (300 + 400 * b) * t * (1 + t)) * 0.3
    audio[b, :n] += 0.02 * torch.randn(n)
audio_lens = torch.tensor(lengths)
features = MelSpectrogram(features=80, dither=0.0).eval()
feats, feat_lens = features(audio, audio_lens)  # (B, M, T)
print("feats", tuple(feats.shape), "feat_lens", feat_lens.tolist())

# %% [markdown]
# ## 2. Convolution subsampling
# A Conformer-style encoder (d_model 64, 2 layers, kernel 15, limited context
# [left 8, right 2] frames). `pre_encode` has two Conv2d(kernel 3, stride 2) + ReLU
# stages: each maps a length L to floor((L - 1) / 2) + 1, so 4x fewer frames.

# %%
encoder = ConformerEncoder(
    feat_in=80,
    n_layers=2,
    d_model=64,
    n_heads=4,
    conv_kernel_size=15,
    att_context_size=[8, 2],
).eval()
n_params = sum(p.numel() for p in encoder.parameters())
print(f"encoder parameters: {n_params / 1e3:.0f} k")
with torch.no_grad():
    x, lens = encoder.pre_encode(feats.transpose(1, 2), feat_lens)  # (B, T', D)
print("after subsampling", tuple(x.shape), "lens", lens.tolist())
assert lens.tolist() == [((n - 1) // 2) // 2 + 1 for n in feat_lens.tolist()]

if plt:
    fig, axes = plt.subplots(2, 1, figsize=(8, 5))
    axes[0].imshow(feats[0], origin="lower", aspect="auto")
    axes[0].set_title("log-mel features (M=80, T frames)")
    axes[1].imshow(x[0].T, origin="lower", aspect="auto")
    axes[1].set_title("after 4x subsampling (D=64, T' frames)")
    save_figure(fig, OUT / "02_subsampling.png")

# %% [markdown]
# ## 3. One Conformer block, and what its attention looks at
# The positional encoding scales x by sqrt(D) and returns the sinusoids of the 2T'-1
# relative distances. The attention mask combines padding (item 1 is shorter) and the
# limited context: query i may see keys i-8 .. i+2. `return_weights=True` asks the
# readable attention path for its softmax weights.

# %%
with torch.no_grad():
    x, pos_emb = encoder.pos_enc(x)  # (B, T', D), (1, 2T'-1, D)
    t_sub = x.size(1)
    att_mask = self_attention_mask(lens, t_sub, encoder.att_context_size)  # (B,T',T')
    layer = encoder.layers[0]
    h = layer.norm_self_att(x + 0.5 * layer.feed_forward1(layer.norm_feed_forward1(x)))
    _, weights = layer.self_attn(h, h, h, pos_emb, att_mask, return_weights=True)
    y = layer(x, att_mask, pos_emb, padding_mask(lens, t_sub))  # the whole block
print("block output", tuple(y.shape), "attention weights", tuple(weights.shape))
print(
    "rows sum to 1 on valid frames:",
    weights[1, 0, : lens[1]].sum(-1).allclose(torch.ones(int(lens[1]))),
)

if plt:
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for b in range(2):
        axes[b].imshow(weights[b, 0], origin="upper", cmap="viridis")
        axes[b].set_title(f"item {b} (length {int(lens[b])}), head 0")
        axes[b].set_xlabel("key frame")
        axes[b].set_ylabel("query frame")
    save_figure(fig, OUT / "02_attention_map.png")

# %% [markdown]
# ## 4. The whole encoder, and padding invariance
# The padded batch gives the same valid frames as the short item alone: padding is
# masked in the subsampling convolutions, the attention and the depthwise convolution.

# %%
with torch.no_grad():
    enc, enc_lens = encoder(feats, feat_lens)  # (B, D, T')
    alone, _ = encoder(feats[1:, :, : feat_lens[1]], feat_lens[1:])
difference = (enc[1, :, : enc_lens[1]] - alone[0]).abs().max().item()
print("enc", tuple(enc.shape), "enc_lens", enc_lens.tolist())
print(f"padded batch vs alone, max |difference| = {difference:.1e}")

fast = ConformerEncoder(
    feat_in=80,
    n_layers=2,
    d_model=64,
    subsampling="dw_striding",
    subsampling_factor=8,
    subsampling_conv_channels=64,
    conv_kernel_size=9,
).eval()
with torch.no_grad():
    fast_enc, fast_lens = fast(feats, feat_lens)
print("FastConformer (8x):", tuple(fast_enc.shape), "lens", fast_lens.tolist())

if plt:
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.imshow(enc[0], origin="lower", aspect="auto")
    ax.set_title("Conformer encoder output, item 0 (D=64, T' frames)")
    save_figure(fig, OUT / "02_encoder_output.png")
