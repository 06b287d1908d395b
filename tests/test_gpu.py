"""CUDA: the same numbers as the CPU for the encoder and both losses, the training loop
in each precision, dropout's and AdamW's GPU paths. Skipped on a machine without CUDA
(`benchmarks/gpu.py` runs these and the recipes' throughput on one)."""

import pytest
import torch
from tiny_model import tiny_config

from minispeech.core.optim import build_optimizer, fused_supported
from minispeech.nn import ConformerEncoder, ctc_loss
from minispeech.nn.dropout import dropout
from minispeech.training.loop import train

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine"
)
CUDA = torch.device("cuda")


def test_conformer_forward_and_backward_match_the_cpu():
    encoder = ConformerEncoder(feat_in=16, n_layers=2, d_model=32, n_heads=4).eval()
    feats, lens = torch.randn(3, 16, 50), torch.tensor([50, 33, 20])
    out_cpu, lens_cpu = encoder(feats, lens)
    out_cpu.sum().backward()
    grads_cpu = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    gpu = encoder.to(CUDA)
    out_gpu, lens_gpu = gpu(feats.to(CUDA), lens.to(CUDA))
    out_gpu.sum().backward()
    assert torch.equal(lens_gpu.cpu(), lens_cpu)
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-4, atol=1e-4)
    for g_cpu, p in zip(grads_cpu, gpu.parameters()):
        torch.testing.assert_close(p.grad.cpu(), g_cpu, rtol=1e-3, atol=1e-3)


def test_ctc_loss_on_cuda_equals_the_cpu_and_torch():
    log_probs = torch.randn(3, 40, 6).log_softmax(-1)  # (B, T, V+1), blank 5
    targets = torch.randint(0, 5, (3, 12))
    in_lens, out_lens = torch.tensor([40, 31, 25]), torch.tensor([12, 9, 7])
    args = (targets, in_lens, out_lens)
    on_gpu = [a.to(CUDA) for a in args]
    cpu = ctc_loss(log_probs, *args, blank=5, reduction="none")
    gpu = ctc_loss(log_probs.to(CUDA), *on_gpu, blank=5, reduction="none")
    torch_gpu = torch.nn.functional.ctc_loss(
        log_probs.to(CUDA).transpose(0, 1), *on_gpu, blank=5, reduction="none"
    )  # torch's is time-first: (T, B, V+1)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(torch_gpu.cpu(), cpu, rtol=1e-5, atol=1e-4)


def test_rnnt_loss_on_cuda_equals_the_cpu():
    from minispeech.asr.rnnt import rnnt_loss

    logits = torch.randn(2, 9, 5, 7)  # (B, T, U+1, V+1)
    labels = torch.randint(0, 6, (2, 4))
    t_lens, u_lens = torch.tensor([9, 6]), torch.tensor([4, 3])
    cpu = rnnt_loss(logits, labels, t_lens, u_lens, blank=6, reduction="none")
    gpu = rnnt_loss(
        *(x.to(CUDA) for x in (logits, labels, t_lens, u_lens)),
        blank=6,
        reduction="none",
    )
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-4)


def test_dropout_on_cuda_is_f_dropout_contract():
    x = torch.rand(256, 256, device=CUDA) + 0.5
    out = dropout(x, 0.25)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] / 0.75)
    assert abs(1 - kept.float().mean().item() - 0.25) < 0.02


def test_adamw_is_fused_on_cuda():
    params = [torch.nn.Parameter(torch.zeros(3, device=CUDA))]
    assert fused_supported(params)
    assert build_optimizer(params, {"name": "adamw", "lr": 0.1}).defaults["fused"]


@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_loop_trains_on_cuda_in_each_precision(tmp_path, precision):
    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    cfg = tiny_config(tmp_path, trainer={"accelerator": "gpu", "precision": precision})
    path = train(cfg)
    assert path.is_file()
