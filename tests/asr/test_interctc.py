"""Intermediate CTC (Lee & Watanabe 2021, eq. 6) and self-conditioned CTC (Nozaki &
Komatsu 2021, eq. 9): the loss and its gradients against torch's own CTC on layer
outputs caught (and, for conditioning, replaced) by forward hooks with the model's
own path switched off; the config checks; inference."""

import copy

import pytest
import torch
import torch.nn.functional as F
from test_asr_models import CTC_CFG, make_batch  # tests/asr is on sys.path

from minispeech.asr import CTCModel
from minispeech.core.config import ConfigError
from minispeech.core.model import restore_from


def interctc_cfg(weights=(0.3,), layers=(0,), n_layers=3, conditioning=False):
    cfg = copy.deepcopy(CTC_CFG)
    cfg["encoder"]["n_layers"] = n_layers
    cfg["interctc"] = {"loss_weights": list(weights), "apply_at_layers": list(layers)}
    if conditioning:
        cfg["interctc"]["use_conditioning"] = True
    return cfg


def torch_ctc(model, log_probs, enc_lens, batch):
    """F.ctc_loss summed over the batch / B: NeMo's mean_batch, the default."""
    loss = F.ctc_loss(
        log_probs.transpose(0, 1),  # (T', B, V)
        batch["tokens"],
        enc_lens,
        batch["token_lens"],
        blank=model.blank,
        reduction="sum",
        zero_infinity=True,
    )
    return loss / log_probs.shape[0]


def hooked_reference(model, layers):
    """The model's own intermediate path off; forward hooks on `layers` catch each
    output and, with conditioning, return out + Linear(softmax(head(out)))."""
    model.encoder.intermediate = None
    caught = {}

    def hook(_module, _args, out, i):
        caught[i] = out  # (B, T', D)
        if model.conditioning is None:
            return out
        return out + model.conditioning(F.softmax(model.head(out), dim=-1))

    for i in layers:
        model.encoder.layers[i].register_forward_hook(
            lambda m, a, out, i=i: hook(m, a, out, i)
        )
    return caught


def assert_same_grads(loss, expected, model):
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    expected_grads = torch.autograd.grad(expected, params, allow_unused=True)
    # two float32 CTC implementations: equal to 1e-4 of the largest gradient entry
    scale = max(float(g.abs().max()) for g in expected_grads if g is not None)
    for got, want in zip(grads, expected_grads):
        assert (got is None) == (want is None)
        if want is not None:
            torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4 * scale)


@pytest.mark.parametrize("conditioning", [False, True], ids=["inter", "selfcond"])
@pytest.mark.parametrize(
    "weights, layers", [((0.3,), (0,)), ((0.2, 0.25), (0, 1))], ids=["one", "two"]
)
def test_loss_is_the_weighted_sum_of_final_and_layer_ctc_losses(
    weights, layers, conditioning
):
    torch.manual_seed(0)
    model = CTCModel(interctc_cfg(weights, layers, conditioning=conditioning))
    model.train()  # the intermediate losses are training's; dropout 0, no SpecAugment
    batch = make_batch(["go left", "stop"])
    loss = model.training_step(batch)["loss"]

    caught = hooked_reference(model, layers)
    log_probs, enc_lens = model(batch["audio"], batch["audio_lens"])
    expected = (1 - sum(weights)) * torch_ctc(model, log_probs, enc_lens, batch)
    for i, w in zip(layers, weights):
        layer_log_probs = model.head(caught[i]).log_softmax(-1)  # (B, T', V)
        expected = expected + w * torch_ctc(model, layer_log_probs, enc_lens, batch)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    # the intermediate log-probs are part of the graph: the reference's gradients
    assert_same_grads(loss, expected, model)


@pytest.mark.parametrize("conditioning", [False, True], ids=["inter", "selfcond"])
def test_validation_loss_is_the_final_layers_ctc_loss(conditioning):
    """In eval mode (validation) the loss is the final layer's CTC loss alone,
    comparable with a model trained without intermediate CTC."""
    model = CTCModel(interctc_cfg(conditioning=conditioning))
    model.eval()
    batch = make_batch(["go left", "stop"])
    with torch.no_grad():
        loss = model.training_step(batch)["loss"]
        log_probs, enc_lens = model(batch["audio"], batch["audio_lens"])
        expected = torch_ctc(model, log_probs, enc_lens, batch)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    assert model.inter_log_probs == {}


def test_plain_interctc_leaves_inference_alone():
    model = CTCModel(interctc_cfg())
    model.eval()
    audio, lens = torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000])
    with torch.no_grad():
        out = model.log_probs(audio, lens)[0]
        model.encoder.intermediate = None
        torch.testing.assert_close(model.log_probs(audio, lens)[0], out)


def test_conditioning_shapes_inference_as_the_hooked_reference():
    model = CTCModel(interctc_cfg(layers=(1,), conditioning=True))
    model.eval()
    audio, lens = torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000])
    with torch.no_grad():
        out = model.log_probs(audio, lens)[0]
        hooked_reference(model, (1,))
        torch.testing.assert_close(model.log_probs(audio, lens)[0], out)
        model.conditioning = None  # the hooks stop conditioning too
        assert not torch.allclose(model.log_probs(audio, lens)[0], out)


def test_conditioning_survives_save_and_restore(tmp_path):
    model = CTCModel(interctc_cfg(conditioning=True))
    path = model.save_to(tmp_path / "sc.nemo")
    restored = restore_from(path).eval()
    model.eval()
    audio, lens = torch.randn(1, 16000) * 0.1, torch.tensor([16000])
    with torch.no_grad():
        torch.testing.assert_close(
            restored.log_probs(audio, lens)[0], model.log_probs(audio, lens)[0]
        )
    assert restored.conditioning is not None


@pytest.mark.parametrize(
    "section, match",
    [
        ({"loss_weights": [0.3, 0.2], "apply_at_layers": [0]}, "same non-zero length"),
        ({"loss_weights": [0.6, 0.5], "apply_at_layers": [0, 1]}, "sum < 1"),
        ({"loss_weights": [0.0], "apply_at_layers": [0]}, "each > 0"),
        ({"loss_weights": [0.3], "apply_at_layers": [2]}, r"0\.\.1"),
        ({"loss_weights": [0.3], "apply_at_layers": [-1]}, r"0\.\.1"),
        ({"loss_weights": [0.3]}, "apply_at_layers"),
        ({"loss_weights": [0.3], "apply_at_layers": [0], "layers": [1]}, "layers"),
        ({"loss_weights": [0.2, 0.2], "apply_at_layers": [0, 0]}, "distinct"),
        ({"loss_weights": 0.3, "apply_at_layers": [0]}, "a list of numbers"),
        ({"loss_weights": ["a"], "apply_at_layers": [0]}, "a list of numbers"),
        ({"loss_weights": [0.3], "apply_at_layers": [0.5]}, "layer indices"),
        (
            {"loss_weights": [0.3], "apply_at_layers": [0], "use_conditioning": 1},
            "true or false",
        ),
    ],
)
def test_bad_interctc_sections_are_named(section, match):
    cfg = interctc_cfg()
    cfg["interctc"] = section
    with pytest.raises(ConfigError, match=match):
        CTCModel(cfg)
