"""Greedy decoding for the Token-and-Duration Transducer (Xu et al. 2023,
arXiv:2304.06795, Sec. 4): at frame t take the best token and, separately, the best
duration d; a label is emitted and fed to the prediction network, then the search jumps
to frame t + d (d = 0 stays on the frame); a blank jumps max(d, 1) frames, so frames
predicted to hold nothing are never visited. As in NeMo's greedy TDT decoder, at most
max_symbols labels are taken on one frame before moving one frame on.
"""

import torch
from torch import Tensor

from minispeech.asr.transducer_nets import JointNetwork, PredictionNetwork


@torch.no_grad()
def tdt_greedy_decode_single(
    prediction: PredictionNetwork,
    joint: JointNetwork,
    enc: Tensor,
    durations: list[int],
    max_symbols: int = 10,
) -> list[int]:
    """Greedy labels of one utterance; enc (T,D_enc), already cut to its length.

    The joint's output is the V token logits (blank = prediction.blank, last) followed
    by len(durations) duration logits.
    """
    assert enc.ndim == 2, f"enc must be (T,D_enc), got {tuple(enc.shape)}"
    if joint.num_extra_outputs != len(durations):
        raise ValueError(
            f"joint has {joint.num_extra_outputs} extra outputs for "
            f"{len(durations)} durations {durations}"
        )
    blank, n_tokens = prediction.blank, prediction.blank + 1
    step = prediction.step_function()
    g, state = step(enc.new_full((1,), blank).long())  # (1,D_pred)
    hyp, t, on_this_frame = [], 0, 0
    while t < enc.shape[0]:
        logits = joint.step(enc[t : t + 1], g)[0]  # (V+D,)
        k = int(logits[:n_tokens].argmax())
        d = durations[int(logits[n_tokens:].argmax())]
        if k == blank:
            t, on_this_frame = t + max(d, 1), 0
            continue
        hyp.append(k)
        g, state = step(enc.new_full((1,), k).long(), state)
        on_this_frame += 1
        if d > 0 or on_this_frame >= max_symbols:
            t, on_this_frame = t + max(d, 1), 0
    return hyp


def tdt_greedy_decode(
    prediction: PredictionNetwork,
    joint: JointNetwork,
    enc: Tensor,
    enc_lens: Tensor,
    durations: list[int],
    max_symbols: int = 10,
) -> list[list[int]]:
    """tdt_greedy_decode_single for each utterance of enc (B,T,D_enc), enc_lens (B,).

    Utterances jump by different durations, so they are decoded one by one (NeMo also
    recommends its non-batched greedy for TDT).
    """
    assert enc.ndim == 3, f"enc must be (B,T,D_enc), got {tuple(enc.shape)}"
    return [
        tdt_greedy_decode_single(prediction, joint, e[:n], durations, max_symbols)
        for e, n in zip(enc, enc_lens.tolist())
    ]
