"""Generation: cached == no-cache reference, a left-padded batch == one item at a time
(greedy and seeded sampling), top-k/top-p against float64 brute force, stops, limits."""

import pytest
import torch

from minispeech.speechlm.generation import (
    generate,
    generate_reference,
    left_pad,
    top_k_filter,
    top_p_filter,
)
from minispeech.speechlm.lm import TransformerLM

V, D = 17, 16


@pytest.fixture
def lm() -> TransformerLM:
    model = TransformerLM(V, d_model=D, n_layers=2, n_heads=2).eval()
    with torch.no_grad():
        model.embedding.weight.mul_(5)  # tied: max prob ~0.2 instead of ~0.08
    return model


def prompts(lm, lengths=(5, 2, 7)) -> list[torch.Tensor]:
    """Chat-like prompts: token embeddings with 3 "audio frames" spliced in."""
    out = []
    for n in lengths:
        tokens = lm.embed(torch.randint(0, V, (1, n)))[0]  # (n, D)
        audio = 0.5 * torch.randn(3, D)  # (3, D)
        out.append(torch.cat([tokens[:1], audio, tokens[1:]]).detach())  # (n + 3, D)
    return out


def seeded(seeds) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


SAMPLING = dict(strategy="sample", temperature=0.8, top_k=6, top_p=0.9)


def test_left_pad():
    embeds, mask = left_pad([torch.ones(2, 3), 2 * torch.ones(4, 3)])
    assert embeds.shape == (2, 4, 3) and mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert embeds[0, :2].abs().sum() == 0 and embeds[0, 2:].eq(1).all()


def test_cached_equals_reference(lm):
    embeds, mask = left_pad(prompts(lm))
    greedy = generate(lm, embeds, mask, max_new_tokens=10)
    assert greedy == generate_reference(lm, embeds, mask, max_new_tokens=10)
    assert [len(g) for g in greedy] == [10, 10, 10]
    a = generate(lm, embeds, mask, 10, generator=seeded([1, 2, 3]), **SAMPLING)
    b = generate_reference(
        lm, embeds, mask, 10, generator=seeded([1, 2, 3]), **SAMPLING
    )
    assert a == b


def test_batched_left_padded_equals_one_by_one(lm):
    items = prompts(lm)
    embeds, mask = left_pad(items)
    ones = [torch.ones(1, len(e), dtype=torch.bool) for e in items]
    batch = generate(lm, embeds, mask, 8)
    alone = [generate(lm, e[None], m, 8)[0] for e, m in zip(items, ones)]
    assert batch == alone
    # sampling: one generator per item, each item draws only from its own
    batch = generate(lm, embeds, mask, 8, generator=seeded([7, 8, 9]), **SAMPLING)
    alone = [
        generate(lm, e[None], m, 8, generator=g, **SAMPLING)[0]
        for e, m, g in zip(items, ones, seeded([7, 8, 9]))
    ]
    assert batch == alone
    assert batch != generate(lm, embeds, mask, 8)  # it did sample


def test_sampling_is_seeded_and_top_k_1_is_greedy(lm):
    embeds, mask = left_pad(prompts(lm))
    gen = torch.Generator().manual_seed(3)
    a = generate(lm, embeds, mask, 6, generator=gen, strategy="sample")
    b = generate(
        lm,
        embeds,
        mask,
        6,
        generator=torch.Generator().manual_seed(3),
        strategy="sample",
    )
    assert a == b
    top1 = generate(lm, embeds, mask, 6, strategy="sample", top_k=1, generator=gen)
    assert top1 == generate(lm, embeds, mask, 6)


def test_stop_ids_stop_each_item_alone_and_max_new_tokens(lm):
    embeds, mask = left_pad(prompts(lm))
    free = generate(lm, embeds, mask, 12)
    stop = free[0][3]  # a token item 0 does produce
    stopped = generate(lm, embeds, mask, 12, stop_ids={stop})
    for f, s in zip(free, stopped):
        expected = f[: f.index(stop)] if stop in f else f
        assert s == expected
    assert len(stopped[0]) == free[0].index(stop) <= 3
    assert generate(lm, embeds, mask, 3) == [f[:3] for f in free]
    assert generate(lm, embeds, mask, 0) == [[], [], []]
    every = set(range(V))  # every item stops at once: nothing returned
    assert generate(lm, embeds, mask, 5, stop_ids=every) == [[], [], []]


def test_prompt_checks(lm):
    embeds, mask = left_pad(prompts(lm))
    right = mask.flip(1)  # right padding: the last column is not real for all items
    with pytest.raises(ValueError, match="left-padded"):
        generate(lm, embeds, right, 3)
    with pytest.raises(ValueError, match="strategy"):
        generate(lm, embeds, mask, 3, strategy="beam")
    with pytest.raises(ValueError, match="generators"):
        generate(lm, embeds, mask, 3, strategy="sample", generator=seeded([1]))


def top_k_reference(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Brute force in float64: the k largest of each row by sorting a Python list."""
    out = torch.full(logits.shape, float("-inf"), dtype=torch.float64)
    for r, row in enumerate(logits.double().tolist()):
        for j in sorted(range(len(row)), key=lambda j: -row[j])[:k]:
            out[r, j] = row[j]
    return out


def top_p_reference(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Brute force in float64: add top tokens until their probability reaches p."""
    out = torch.full(logits.shape, float("-inf"), dtype=torch.float64)
    for r, row in enumerate(logits.double()):
        probs = row.softmax(dim=0).tolist()
        total = 0.0
        for j in sorted(range(len(probs)), key=lambda j: -probs[j]):
            out[r, j] = row[j]
            total += probs[j]
            if total >= p:
                break
    return out


def test_top_k_and_top_p_against_brute_force():
    logits = 2.0 * torch.randn(6, 20)
    for k in (1, 3, 19):
        assert torch.equal(top_k_filter(logits, k).double(), top_k_reference(logits, k))
    assert torch.equal(top_k_filter(logits, 0), logits)
    for p in (1e-6, 0.3, 0.75, 0.95, 0.999):
        assert torch.equal(top_p_filter(logits, p).double(), top_p_reference(logits, p))
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    # a hand case: probabilities 0.5, 0.3, 0.2 -> p=0.6 keeps the first two
    hand = torch.tensor([[0.5, 0.3, 0.2]]).log()
    assert torch.isinf(top_p_filter(hand, 0.6)).tolist() == [[False, False, True]]
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(logits, 0.0)
