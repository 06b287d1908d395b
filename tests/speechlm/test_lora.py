"""LoRA: starts at the base, merged == unmerged, only LoRA trains, pattern errors."""

import pytest
import torch
from torch import nn

from minispeech.nn.freeze import freeze
from minispeech.speechlm.lm import TransformerLM
from minispeech.speechlm.lora import LoRALinear, add_lora, merge_lora


class Wrapper(nn.Module):
    """The LM one level down, as the SALM model holds it (`lm.` prefix)."""

    def __init__(self):
        super().__init__()
        self.lm = TransformerLM(11, d_model=16, n_layers=2, n_heads=2)
        self.proj = nn.Linear(16, 16)


def test_zero_b_gives_the_base_output_and_eq3_by_hand():
    base = nn.Linear(6, 4)
    x = torch.randn(3, 6)
    expected = base(x).detach()
    lora = LoRALinear(base, rank=2, alpha=8.0)
    assert torch.equal(lora(x), expected)  # B = 0 at init
    with torch.no_grad():
        lora.lora_B.normal_()
    by_hand = expected + (8.0 / 2) * x @ lora.lora_A.T @ lora.lora_B.T  # Hu Eq. 3
    assert (lora(x) - by_hand).abs().max() < 1e-5


def test_merged_equals_unmerged_in_eval_mode():
    model = Wrapper()
    tokens = torch.randint(0, 11, (2, 7))
    names = add_lora(model, ["lm.layers.*.self_attn.linear_[qv]"], 4, 16, dropout=0.3)
    for name in names:
        with torch.no_grad():
            model.get_submodule(name).lora_B.normal_(std=0.1)
    w0 = model.get_submodule(names[0]).weight.clone()
    model.eval()  # LoRA dropout off
    before, _ = model.lm(tokens)
    merge_lora(model)
    after, _ = model.lm(tokens)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert type(model.get_submodule(names[0])) is nn.Linear
    assert (before - after).abs().max() < 1e-5
    assert (model.get_submodule(names[0]).weight - w0).abs().max() > 1e-3  # BA != 0


def test_freeze_then_lora_trains_only_lora():
    model = Wrapper()
    frozen = freeze(model, ["lm.*"])
    assert "lm.embedding.weight" in frozen and "lm.output.weight" in frozen  # tied name
    assert "proj.weight" not in frozen
    add_lora(
        model, ["lm.layers.*.self_attn.linear_q", "lm.layers.*.self_attn.linear_v"]
    )
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [
        "lm.layers.0.self_attn.linear_q.lora_A",
        "lm.layers.0.self_attn.linear_q.lora_B",
        "lm.layers.0.self_attn.linear_v.lora_A",
        "lm.layers.0.self_attn.linear_v.lora_B",
        "lm.layers.1.self_attn.linear_q.lora_A",
        "lm.layers.1.self_attn.linear_q.lora_B",
        "lm.layers.1.self_attn.linear_v.lora_A",
        "lm.layers.1.self_attn.linear_v.lora_B",
        "proj.weight",
        "proj.bias",
    ]
    logits, _ = model.lm(torch.randint(0, 11, (2, 5)))
    logits.sum().backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads == {n for n in trainable if n.startswith("lm.")}


def test_patterns_select_the_right_layers_and_keep_state_dict_keys():
    model = Wrapper()
    keys = set(model.state_dict())
    names = add_lora(model, ["lm.layers.1.*", "proj"], rank=2)
    assert names == [
        "lm.layers.1.self_attn.linear_q",
        "lm.layers.1.self_attn.linear_k",
        "lm.layers.1.self_attn.linear_v",
        "lm.layers.1.self_attn.linear_out",
        "lm.layers.1.feed_forward.linear1",
        "lm.layers.1.feed_forward.linear2",
        "proj",
    ]
    assert type(model.lm.layers[0].self_attn.linear_q) is nn.Linear
    lora_keys = {k for k in model.state_dict() if ".lora_" in k}
    assert set(model.state_dict()) - lora_keys == keys  # base weights keep their keys
    assert len(lora_keys) == 2 * len(names)


def test_unknown_patterns_are_errors_naming_them():
    model = Wrapper()
    with pytest.raises(ValueError, match=r"lm\.layers\.\*\.attn\.q"):
        add_lora(model, ["lm.layers.*.self_attn.linear_q", "lm.layers.*.attn.q"])
    with pytest.raises(ValueError, match="decoder"):
        freeze(model, ["lm.*", "decoder.*"])
    assert all(p.requires_grad for p in model.parameters())  # nothing half-done
    with pytest.raises(TypeError):
        freeze(model, "lm.*")
