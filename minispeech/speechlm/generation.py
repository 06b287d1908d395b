"""Autoregressive generation from a prompt of embeddings: greedy, or sampling with
temperature, top-k and nucleus (top-p) filters.

Sampling: Holtzman et al. 2019, "The Curious Case of Neural Text Degeneration",
arXiv:1904.09751, Sec. 3.1: nucleus sampling draws from the smallest set V^(p) of top
tokens with sum_{x in V^(p)} P(x | x_{1:i-1}) >= p (their Eq. 2), renormalised (Eq. 3).
Top-k (their Sec. 3.2 cites Fan et al. 2018) keeps the k most probable. The order is
that of common toolkits: logits / temperature, then top-k, then top-p.

`generate` runs the prompt once and then one token per step through the LM's explicit
`LMCache`; `generate_reference` recomputes the whole sequence at every step (readable,
slow); a test asserts that they agree. Prompts are LEFT-padded (`left_pad`), so every
item's last prompt position is real and the new tokens of all items share one column.
Items stop independently: an item that produced a stop id (not returned) keeps being
fed to the LM, but its output is frozen and it draws no random numbers.

Random draws: one uniform u per unfinished item per step, in batch order, mapped to a
token by inverse CDF (the first token whose cumulative probability exceeds u). With
`generator` a list of one torch.Generator per item, item i draws only from its own, so a
batch gives each item exactly what generating it alone with that generator gives.
"""

import torch
import torch.nn.functional as F

STRATEGIES = ("greedy", "sample")


def left_pad(embeds_list: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[(L_i, D)] -> (embeds (B, L, D) zero-padded on the left, mask (B, L) bool)."""
    assert embeds_list, "left_pad needs at least one sequence"
    assert all(e.dim() == 2 for e in embeds_list), [e.shape for e in embeds_list]
    b, length = len(embeds_list), max(e.size(0) for e in embeds_list)
    first = embeds_list[0]
    embeds = first.new_zeros(b, length, first.size(1))  # (B, L, D)
    mask = torch.zeros(b, length, dtype=torch.bool, device=first.device)  # (B, L)
    for i, e in enumerate(embeds_list):
        embeds[i, length - e.size(0) :] = e
        mask[i, length - e.size(0) :] = True
    return embeds, mask


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of (..., V), set the rest to -inf (k <= 0: all).
    Logits tied with the k-th largest are kept too."""
    if k <= 0 or k >= logits.size(-1):
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus (Holtzman Eq. 2): keep the smallest set of top tokens whose probability
    sums to >= p, i.e. token j of the sorted list stays when the tokens above it hold
    < p. The most probable token always stays. (..., V) -> (..., V)."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if p == 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (..., V)
    probs = sorted_logits.float().softmax(dim=-1)  # (..., V)
    above = F.pad(probs.cumsum(dim=-1)[..., :-1], (1, 0))  # mass ranked above, (..., V)
    remove_sorted = above >= p
    remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to vocab order
    return logits.masked_fill(remove, float("-inf"))


def _generators(generator, b: int) -> list:
    """Per item: its own generator, or the shared one (None: the global RNG)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != b:
            raise ValueError(f"{len(generator)} generators for a batch of {b}")
        return list(generator)
    return [generator] * b


def pick_tokens(
    logits: torch.Tensor,
    done: list[bool],
    strategy: str,
    temperature: float,
    top_k: int,
    top_p: float,
    generators: list,
) -> torch.Tensor:
    """The next token of each item: logits (B, V) -> (B,) long. Finished items get the
    argmax and draw nothing."""
    greedy = logits.argmax(dim=-1)  # (B,)
    if strategy == "greedy":
        return greedy
    filtered = top_p_filter(top_k_filter(logits / temperature, top_k), top_p)
    cdf = filtered.double().softmax(dim=-1).cumsum(dim=-1)  # (B, V)
    tokens = greedy.clone()
    for i in range(logits.size(0)):  # batch order: the draws are reproducible
        if done[i]:
            continue
        g = generators[i]
        u = torch.rand((), generator=g, device=g.device if g is not None else "cpu")
        u = u.to(cdf.device, torch.float64) * cdf[i, -1]
        token = torch.searchsorted(
            cdf[i], u.view(1), right=True
        )  # cdf[j-1] <= u < cdf[j]
        tokens[i] = token.clamp(max=logits.size(-1) - 1)[0]
    return tokens


def _record(tokens, outputs, done, stop_ids) -> None:
    """Append each unfinished item's token, or mark it finished on a stop id."""
    for i, token in enumerate(tokens.tolist()):
        if done[i]:
            continue
        if token in stop_ids:
            done[i] = True
        else:
            outputs[i].append(token)


def _check(inputs_embeds, attention_mask, max_new_tokens, strategy, temperature):
    assert inputs_embeds.dim() == 3, (
        f"inputs_embeds (B, L, D), got {inputs_embeds.shape}"
    )
    assert attention_mask.shape == inputs_embeds.shape[:2], (
        f"attention_mask must be (B, L) = {tuple(inputs_embeds.shape[:2])}, "
        f"got {tuple(attention_mask.shape)}"
    )
    if not bool(attention_mask[:, -1].all()):
        raise ValueError("prompts must be left-padded: attention_mask[:, -1] all True")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "sample" and temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")


@torch.no_grad()
def generate(
    lm,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    stop_ids: set[int] = frozenset(),
    strategy: str = "greedy",
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> list[list[int]]:
    """New token ids per item (stop id excluded), decoding with the LM's cache.

    lm: a TransformerLM (or anything with its forward(tokens=, inputs_embeds=,
    attention_mask=, cache=) -> (logits, cache)), in eval mode. inputs_embeds (B, L, D)
    and attention_mask (B, L) bool: the left-padded prompt (`left_pad`).
    """
    _check(inputs_embeds, attention_mask, max_new_tokens, strategy, temperature)
    b = inputs_embeds.size(0)
    gens = _generators(generator, b)
    outputs, done = [[] for _ in range(b)], [False] * b
    if max_new_tokens == 0:
        return outputs
    # 1) the prompt, all positions at once
    logits, cache = lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
    for step in range(max_new_tokens):
        # 2) choose from the last position (real for every item: left padding)
        options = (strategy, temperature, top_k, top_p, gens)
        tokens = pick_tokens(logits[:, -1], done, *options)  # (B,)
        _record(tokens, outputs, done, stop_ids)
        if all(done) or step + 1 == max_new_tokens:
            break
        # 3) feed the new tokens: the mask grows by one real column (cache.mask + True)
        logits, cache = lm(tokens=tokens.unsqueeze(1), cache=cache)  # (B, 1, V)
    return outputs


@torch.no_grad()
def generate_reference(
    lm,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    stop_ids: set[int] = frozenset(),
    strategy: str = "greedy",
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> list[list[int]]:
    """`generate` without the cache: the whole sequence is recomputed at every step."""
    _check(inputs_embeds, attention_mask, max_new_tokens, strategy, temperature)
    b = inputs_embeds.size(0)
    gens = _generators(generator, b)
    outputs, done = [[] for _ in range(b)], [False] * b
    embeds, mask = inputs_embeds, attention_mask.bool()
    for _ in range(max_new_tokens):
        logits, _ = lm(inputs_embeds=embeds, attention_mask=mask)  # (B, L', V)
        options = (strategy, temperature, top_k, top_p, gens)
        tokens = pick_tokens(logits[:, -1], done, *options)  # (B,)
        _record(tokens, outputs, done, stop_ids)
        if all(done):
            break
        new = lm.embed(tokens.unsqueeze(1))  # (B, 1, D)
        embeds = torch.cat([embeds, new], dim=1)  # (B, L' + 1, D)
        mask = F.pad(mask, (0, 1), value=True)  # (B, L' + 1)
    return outputs
