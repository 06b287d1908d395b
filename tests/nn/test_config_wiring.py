"""Every constructor argument reaches the built module (STYLE rule 12).

For each argument, build the module at a base value and at a changed value: the module's
structure (repr, which shows dropout rates, attention impl, context, positions
table...), its parameter count or its state-dict shapes must differ. A new argument
without an entry here fails `test_every_argument_is_covered`.
"""

import inspect

import pytest

from minispeech.nemo.config import UNSUPPORTED_AT_DEFAULT, nemo_encoder_kwargs
from minispeech.nn import ConformerEncoder, TransformerDecoder, TransformerEncoder

CONFORMER_BASE = dict(
    feat_in=16,
    n_layers=3,
    d_model=16,
    n_heads=2,
    conv_kernel_size=5,
    stochastic_depth_drop_prob=0.2,  # so that the mode and start layer matter
)
CONFORMER_CHANGES = {
    "feat_in": 24,
    "n_layers": 4,
    "d_model": 24,
    "feat_out": 8,
    "subsampling": "dw_striding",
    "subsampling_factor": 8,
    "subsampling_conv_channels": 8,
    "ff_expansion_factor": 2,
    "self_attention_model": "abs_pos",
    "n_heads": 4,
    "att_context_size": [4, 2],
    "att_context_style": "chunked_limited",
    "xscaling": False,
    "untie_biases": False,
    "pos_emb_max_len": 100,
    "conv_kernel_size": 7,
    "conv_norm_type": "layer_norm",
    "conv_context_size": "causal",
    "use_bias": False,
    "dropout": 0.3,
    "dropout_pre_encoder": 0.3,
    "dropout_emb": 0.3,
    "dropout_att": 0.3,
    "stochastic_depth_drop_prob": 0.4,
    "stochastic_depth_mode": "uniform",
    "stochastic_depth_start_layer": 2,
    "use_pytorch_sdpa": True,
}
TRANSFORMER_BASE = dict(feat_in=16, n_layers=2, d_model=16, n_heads=2)
TRANSFORMER_CHANGES = {
    "feat_in": 24,
    "n_layers": 3,
    "d_model": 24,
    "n_heads": 4,
    "ff_expansion_factor": 2,
    "subsampling": "dw_striding",
    "subsampling_factor": 8,
    "subsampling_conv_channels": 8,
    "att_context_size": [3, 3],
    "xscaling": False,
    "pos_emb_max_len": 100,
    "dropout": 0.3,
    "dropout_pre_encoder": 0.3,
    "dropout_att": 0.3,
    "use_pytorch_sdpa": True,
}
DECODER_BASE = dict(vocab_size=10, d_model=16, n_layers=2, n_heads=2)
DECODER_CHANGES = {
    "vocab_size": 12,
    "d_model": 24,
    "n_layers": 3,
    "n_heads": 4,
    "ff_expansion_factor": 2,
    "max_len": 100,
    "dropout": 0.3,
    "dropout_att": 0.3,
    "use_pytorch_sdpa": True,
    "xscaling": False,
    "embedding_norm": True,
    "tie_embedding": True,
}
CASES = {
    "ConformerEncoder": (ConformerEncoder, CONFORMER_BASE, CONFORMER_CHANGES),
    "TransformerEncoder": (TransformerEncoder, TRANSFORMER_BASE, TRANSFORMER_CHANGES),
    "TransformerDecoder": (TransformerDecoder, DECODER_BASE, DECODER_CHANGES),
}


def fingerprint(module):
    n_params = sum(p.numel() for p in module.parameters())  # shared params count once
    shapes = tuple((k, tuple(v.shape)) for k, v in module.state_dict().items())
    return repr(module), n_params, shapes


@pytest.mark.parametrize("name", CASES)
def test_every_argument_is_covered(name):
    cls, base, changes = CASES[name]
    arguments = set(inspect.signature(cls.__init__).parameters) - {"self"}
    assert arguments == set(changes), arguments ^ set(changes)


@pytest.mark.parametrize("name", CASES)
def test_each_argument_changes_the_module(name):
    cls, base, changes = CASES[name]
    reference = fingerprint(cls(**base))
    for key, value in changes.items():
        changed = fingerprint(cls(**{**base, key: value}))
        assert changed != reference, f"{name}({key}={value!r}) built the same module"


def test_nemo_section_keys_reach_the_encoder():
    """Each key of a NeMo encoder section lands in the ConformerEncoder arguments."""
    section = {
        "_target_": "nemo.collections.asr.modules.ConformerEncoder",
        **CONFORMER_BASE,
    }
    for key, value in CONFORMER_CHANGES.items():
        kwargs = nemo_encoder_kwargs({**section, key: value})
        assert kwargs[key] == value, key


@pytest.mark.parametrize("key", UNSUPPORTED_AT_DEFAULT)
def test_unsupported_nemo_options_are_refused_by_name(key):
    section = dict(CONFORMER_BASE)
    nemo_encoder_kwargs({**section, key: UNSUPPORTED_AT_DEFAULT[key]})  # default: fine
    with pytest.raises(ValueError, match=key):
        nemo_encoder_kwargs({**section, key: "something else"})
