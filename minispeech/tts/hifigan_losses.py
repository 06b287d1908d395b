"""HiFi-GAN's losses (least-squares GAN, feature matching, mel L1) and the masked
mel L1 used to score vocoders.

Kong, Kim & Bae 2020, "HiFi-GAN" (arXiv:2010.05646), Sec. 2.4 "Training loss
terms", with D_k the k-th sub-discriminator (5 periods + 3 scales), x real audio, s
its mel, G(s) generated:
  GAN loss (Eq. 1-2, least squares, Mao et al. 2017)
      L_adv(D; G) = E[(D(x) - 1)^2 + D(G(s))^2],   L_adv(G; D) = E[(D(G(s)) - 1)^2]
  mel-spectrogram loss      L_mel(G) = E[|| phi(x) - phi(G(s)) ||_1]  (phi: log-mel)
  feature matching loss     L_FM(G; D) = E[sum_i 1/N_i || D^i(x) - D^i(G(s)) ||_1]
                            (N_i: elements of layer i's feature map: a mean)
  final loss                L_D = sum_k L_adv(D_k; G),
      L_G = sum_k [L_adv(G; D_k) + lambda_fm L_FM(G; D_k)] + lambda_mel L_mel(G),
      lambda_fm = 2, lambda_mel = 45.
Expectations are means over the batch and the score map.

`masked_mel_l1` is the mel L1 per utterance over its valid frames (validation).
"""

from __future__ import annotations

import torch
from torch import Tensor


def discriminator_loss(real_scores: list[Tensor], fake_scores: list[Tensor]) -> Tensor:
    """L_D, the GAN loss of the discriminators summed over them:
    sum_k mean((1 - D_k(x))^2) + mean(D_k(G(s))^2); scores (B, N_k) each."""
    return sum(
        (1 - real.float()).pow(2).mean() + fake.float().pow(2).mean()
        for real, fake in zip(real_scores, fake_scores, strict=True)
    )


def generator_adversarial_loss(fake_scores: list[Tensor]) -> Tensor:
    """The generator's GAN loss summed over sub-discriminators:
    sum_k mean((1 - D_k(G(s)))^2)."""
    return sum((1 - fake.float()).pow(2).mean() for fake in fake_scores)


def feature_matching_loss(
    real_features: list[list[Tensor]], fake_features: list[list[Tensor]]
) -> Tensor:
    """The feature matching loss summed over sub-discriminators:
    sum_k sum_i mean |D_k^i(x) - D_k^i(G(s))|."""
    return sum(
        (real.float() - fake.float()).abs().mean()
        for real_maps, fake_maps in zip(real_features, fake_features, strict=True)
        for real, fake in zip(real_maps, fake_maps, strict=True)
    )


def generator_loss(
    fake_scores: list[Tensor],
    real_features: list[list[Tensor]],
    fake_features: list[list[Tensor]],
    mel_l1: Tensor,
    feature_matching_factor: float = 2.0,
    l1_loss_factor: float = 45.0,
) -> Tensor:
    """The final loss L_G: L_adv(G) + lambda_fm L_FM + lambda_mel L_mel, all
    sub-discriminators' terms summed; mel_l1 is L_mel (mean |phi(x) - phi(G(s))|)."""
    adversarial = generator_adversarial_loss(fake_scores)
    matching = feature_matching_loss(real_features, fake_features)
    return adversarial + feature_matching_factor * matching + l1_loss_factor * mel_l1


def masked_mel_l1(mel: Tensor, other: Tensor, mel_lens: Tensor) -> Tensor:
    """mean |mel - other| over each utterance's valid frames: (B, M, T) -> (B,)."""
    valid = torch.arange(mel.shape[-1], device=mel.device) < mel_lens[:, None]  # (B, T)
    error = (mel - other).abs().sum(1) * valid  # (B, T)
    return error.sum(1) / (valid.sum(1) * mel.shape[1]).clamp_min(1)
