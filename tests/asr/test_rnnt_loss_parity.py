"""RNN-T loss against published numbers: warp-transducer's and NeMo's test suites, and
NeMo's own loss values and gradients saved in shared/nemo_reference/losses_io.npz."""

import numpy as np
import torch

from minispeech.asr.rnnt import rnnt_loss

# fmt: off
# Shared by warp-transducer pytorch_binding/test/test.py (small_test) and NeMo
# tests/collections/asr/numba/rnnt_loss/test_rnnt_pytorch.py (test_case_small):
# (B=1, T=2, U+1=3, V=5), labels [1, 2], blank 0, cost 4.495666.
SMALL_ACTS = [[[[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.1, 0.6, 0.1, 0.1],
                [0.1, 0.1, 0.2, 0.8, 0.1]],
               [[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.1, 0.2, 0.1, 0.1],
                [0.7, 0.1, 0.2, 0.1, 0.1]]]]
# warp-transducer: gradient w.r.t. log_softmax(acts)
WARP_SMALL_GRAD_LOGPROBS = [
    [[[-0.308198071906, -0.6918019280939998, 0.0, 0.0, 0.0],
      [-0.308198071906, 0.0, -0.3836038561880001, 0.0, 0.0],
      [-0.3836038561880001, 0.0, 0.0, 0.0, 0.0]],
     [[0.0, -0.308198071906, 0.0, 0.0, 0.0],
      [0.0, 0.0, -0.6163961438119995, 0.0, 0.0],
      [-0.9999999999999991, 0.0, 0.0, 0.0, 0.0]]]]
# NeMo: gradient w.r.t. the raw acts
NEMO_SMALL_GRAD = [
    [[[-0.13116688, -0.3999269, 0.17703125, 0.17703125, 0.17703125],
      [-0.18572757, 0.12247056, -0.18168412, 0.12247056, 0.12247056],
      [-0.32091254, 0.06269141, 0.06928472, 0.12624499, 0.06269141]],
     [[0.05456069, -0.21824276, 0.05456069, 0.05456069, 0.05456069],
      [0.12073959, 0.12073959, -0.48295835, 0.12073959, 0.12073959],
      [-0.6925882, 0.16871116, 0.18645467, 0.16871116, 0.16871116]]]]
# NeMo test_case_big_tensor (also warp-transducer's big_test): (B=2, T=4, U+1=3, V=3),
# labels [[1, 2], [1, 1]], blank 0; NeMo's gradients are w.r.t. the raw acts.
BIG_ACTS = [
    [[[0.06535690384862791, 0.7875301411923206, 0.08159176605666074],
      [0.5297155426466327, 0.7506749639230854, 0.7541348379087998],
      [0.6097641124736383, 0.8681404965673826, 0.6225318186056529]],
     [[0.6685222872103057, 0.8580392805336061, 0.16453892311765583],
      [0.989779515236694, 0.944298460961015, 0.6031678586829663],
      [0.9467833543605416, 0.666202507295747, 0.28688179752461884]],
     [[0.09418426230195986, 0.3666735970751962, 0.736168049462793],
      [0.1666804425271342, 0.7141542198635192, 0.3993997272216727],
      [0.5359823524146038, 0.29182076440286386, 0.6126422611507932]],
     [[0.3242405528768486, 0.8007644367291621, 0.5241057606558068],
      [0.779194617063042, 0.18331417220174862, 0.113745182072432],
      [0.24022162381327106, 0.3394695622533106, 0.1341595066017014]]],
    [[[0.5055615569388828, 0.051597282072282646, 0.6402903936686337],
      [0.43073311517251, 0.8294731834714112, 0.1774668847323424],
      [0.3207001991262245, 0.04288308912457006, 0.30280282975568984]],
     [[0.6751777088333762, 0.569537369330242, 0.5584738347504452],
      [0.08313242153985256, 0.06016544344162322, 0.10795752845152584],
      [0.7486153608562472, 0.943918041459349, 0.4863558118797222]],
     [[0.4181986264486809, 0.6524078485043804, 0.024242983423721887],
      [0.13458171554507403, 0.3663418070512402, 0.2958297395361563],
      [0.9236695822497084, 0.6899291482654177, 0.7418981733448822]],
     [[0.25000547599982104, 0.6034295486281007, 0.9872887878887768],
      [0.5926057265215715, 0.8846724004467684, 0.5434495396894328],
      [0.6607698886038497, 0.3771277082495921, 0.3580209022231813]]]]
BIG_COSTS = [4.2806528590890736, 3.9384369822503591]
NEMO_BIG_GRAD = [
    [[[-1.86843902e-01, -6.25548810e-02, 2.49398798e-01],
      [-2.03376666e-01, 2.02399328e-01, 9.77333169e-04],
      [-1.41016081e-01, 7.91234672e-02, 6.18926100e-02]],
     [[-1.15517676e-02, -8.12802389e-02, 9.28319991e-02],
      [-1.54257029e-01, 2.29432687e-01, -7.51756504e-02],
      [-2.46593088e-01, 1.46404594e-01, 1.00188486e-01]],
     [[-1.29182907e-02, -6.15932420e-02, 7.45115355e-02],
      [-5.59857301e-02, 2.19830811e-01, -1.63845062e-01],
      [-4.97626871e-01, 2.09239945e-01, 2.88386941e-01]],
     [[1.36048580e-02, -3.02196294e-02, 1.66147724e-02],
      [1.13924511e-01, 6.27811998e-02, -1.76705718e-01],
      [-6.67078257e-01, 3.67658824e-01, 2.99419403e-01]]],
    [[[-3.56343776e-01, -5.53474613e-02, 4.11691219e-01],
      [-9.69219357e-02, 2.94591039e-02, 6.74628317e-02],
      [-6.35175705e-02, 2.76544970e-02, 3.58630717e-02]],
     [[-1.54499024e-01, -7.39420280e-02, 2.28441030e-01],
      [-1.66789949e-01, -8.78955179e-05, 1.66877866e-01],
      [-1.72369644e-01, 1.05565332e-01, 6.68043196e-02]],
     [[2.38748826e-02, -1.18255816e-01, 9.43809375e-02],
      [-1.04707085e-01, -1.08934477e-01, 2.13641584e-01],
      [-3.69844258e-01, 1.80118099e-01, 1.89726159e-01]],
     [[2.57137045e-02, -7.94617534e-02, 5.37480488e-02],
      [1.22328237e-01, -2.38788679e-01, 1.16460443e-01],
      [-5.98686993e-01, 3.02203178e-01, 2.96483815e-01]]]]
# fmt: on


def loss_and_grad(logits, *args, **kwargs):
    x = logits.detach().requires_grad_(True)
    loss = rnnt_loss(x, *args, **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def small_case(dtype):
    lens = torch.tensor([2])
    return torch.tensor(SMALL_ACTS, dtype=dtype), torch.tensor([[1, 2]]), lens, lens


def test_warp_transducer_small_test():
    """warp-transducer gives d cost / d log_softmax(acts); through the log-softmax
    Jacobian the raw-logit gradient is g - softmax * sum(g)."""
    acts, *rest = small_case(torch.float64)
    loss, grad = loss_and_grad(acts, *rest, reduction="sum")
    g = torch.tensor(WARP_SMALL_GRAD_LOGPROBS, dtype=torch.float64)
    expected_grad = g - acts.softmax(-1) * g.sum(-1, keepdim=True)
    torch.testing.assert_close(loss, torch.tensor(4.495666).double(), rtol=1e-6, atol=0)
    torch.testing.assert_close(grad, expected_grad)


def test_nemo_small_case_and_fastemit_cost():
    acts, *rest = small_case(torch.float32)
    loss, grad = loss_and_grad(acts, *rest, reduction="sum")
    torch.testing.assert_close(loss, torch.tensor(4.495666), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(
        grad, torch.tensor(NEMO_SMALL_GRAD), rtol=1e-5, atol=1e-7
    )
    for lam in (1.0, 0.01, 0.00001):  # test_case_small_fastemit_clamp: cost * (1 + lam)
        value = rnnt_loss(acts, *rest, reduction="sum", fastemit_lambda=lam)
        expected = torch.tensor(4.495666 * (1 + lam))
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-8)


def test_nemo_and_warp_big_case():
    acts = torch.tensor(BIG_ACTS, dtype=torch.float64)
    targets, lens = torch.tensor([[1, 2], [1, 1]]), torch.tensor([4, 4])
    loss, grad = loss_and_grad(
        acts, targets, lens, torch.tensor([2, 2]), reduction="none"
    )
    torch.testing.assert_close(loss, torch.tensor(BIG_COSTS, dtype=torch.float64))
    expected_grad = torch.tensor(NEMO_BIG_GRAD, dtype=torch.float64)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-3, atol=1e-8)


def test_nemo_reference_outputs(nemo_ref):
    """losses_io.npz: NeMo 3.0 RNNTLoss (warprnnt_numba, "default", and its pure-PyTorch
    loss) on raw logits (B=2, T=6, U+1=4, V=5), blank = 4 (last), reductions None and
    mean_batch; NeMo log-softmaxes internally, so normalized inputs give the same."""
    ref = {
        k: torch.from_numpy(v) for k, v in np.load(nemo_ref / "losses_io.npz").items()
    }
    logits = ref["rnnt/logits"]
    args = [ref[f"rnnt/{k}"] for k in ("targets", "input_lengths", "target_lengths")]
    for name in ("default", "pytorch"):
        loss = rnnt_loss(logits, *args, blank=4, reduction="none")
        expected = ref[f"rnnt/{name}/none/loss"]
        torch.testing.assert_close(loss, expected, rtol=1e-6, atol=2e-6)
        loss, grad = loss_and_grad(logits, *args, blank=4, reduction="mean_batch")
        expected = ref[f"rnnt/{name}/mean_batch/loss"]
        torch.testing.assert_close(loss, expected, rtol=1e-6, atol=2e-6)
        expected = ref[f"rnnt/{name}/mean_batch/grad_logits"]
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
    loss, grad = loss_and_grad(logits.log_softmax(-1), *args, blank=4)
    tag = "rnnt/default/mean_batch_on_logsoftmax"
    torch.testing.assert_close(loss, ref[f"{tag}/loss"], rtol=1e-6, atol=2e-6)
    # NeMo's gradient is w.r.t. the raw logits before its explicit log_softmax
    x = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(rnnt_loss(x.log_softmax(-1), *args, blank=4), x)
    torch.testing.assert_close(grad, ref[f"{tag}/grad_logits"], rtol=1e-5, atol=1e-6)
