"""Generation with s1 budget forcing (Muennighoff et al. 2025, "s1: Simple test-time scaling").

A reasoning model writes its thoughts between `<think>` and `</think>`, then its answer. Two
controls act on the thinking:
- a minimum: when the model ends its thinking (emits `</think>`, or EOS) before N thinking
  tokens, the delimiter is dropped, the continuation word ("Wait" in the prompt's language,
  WAIT_WORDS) is appended, and generation goes on; this repeats until N tokens are reached;
- a maximum: at N thinking tokens `</think>` is forced and the answer follows.

The loop is written here over the model's forward pass with its KV cache (one sequence), because
both controls rewrite the sequence being generated, which `model.generate` cannot do. Appended
continuation words count as thinking tokens.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from occi import ranges
from occi.errors import OcciError

THINK_START = "<think>"
THINK_END = "</think>"

WAIT_WORDS = {
    "bg": "Чакай", "cs": "Počkej", "da": "Vent", "de": "Warte", "el": "Περίμενε", "en": "Wait", "es": "Espera",
    "et": "Oota", "fi": "Odota", "fr": "Attends", "ga": "Fan", "hr": "Čekaj", "hu": "Várj", "it": "Aspetta",
    "lt": "Palauk", "lv": "Pagaidi", "mt": "Stenna", "nl": "Wacht", "pl": "Czekaj", "pt": "Espera", "ro": "Stai",
    "sk": "Počkaj", "sl": "Počakaj", "sv": "Vänta", "ca": "Espera", "eu": "Itxaron", "gl": "Agarda", "no": "Vent",
}
"""The continuation word per language: the informal singular imperative of "to wait", the way
s1's English "Wait" interrupts one's own reasoning."""


def wait_word(code: str | None) -> str:
    """The continuation word of a language (English "Wait" for a language not in the table)."""
    return WAIT_WORDS.get(code or "en", "Wait")


@dataclass(frozen=True)
class Budget:
    min_thinking_tokens: int = 0
    """Thinking tokens before the model may end its thinking (0: no minimum)."""
    max_thinking_tokens: int | None = None
    """Thinking tokens after which `</think>` is forced (None: no maximum)."""

    def __post_init__(self) -> None:
        for name in ("min_thinking_tokens", "max_thinking_tokens"):
            value = getattr(self, name)
            if value is not None and value not in ranges.at_least(0):
                raise OcciError(f"--{name.replace('_', '-')}: expected a number of tokens >= 0, got {value!r}")
        if self.max_thinking_tokens is not None and self.min_thinking_tokens > self.max_thinking_tokens:
            raise OcciError(f"--min-thinking-tokens {self.min_thinking_tokens} is above --max-thinking-tokens "
                            f"{self.max_thinking_tokens}; lower the minimum or raise the maximum")


@dataclass
class Generation:
    thinking: str | None
    """The thinking text (continuation words included, delimiters not); None without a budget."""
    answer: str
    """What follows `</think>` (or the whole output without a budget)."""
    thinking_tokens: int
    """Tokens of thinking, appended continuation words included."""
    waits: int
    """How often the continuation word was appended."""
    forced_end: bool
    """True when the maximum forced `</think>`."""
    new_tokens: int
    """Tokens after the prompt: thinking, delimiter and answer."""


def eos_ids(model, tokenizer) -> set[int]:
    """The ids that end an answer: the generation config's and the tokenizer's end-of-sequence ids."""
    ids = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def _pick(logits, temperature: float, top_p: float, generator) -> int:
    import torch  # loads torch: only when used

    if temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def generate(model, tokenizer, prompt_ids: list[int], max_new_tokens: int, budget: Budget | None = None,
             wait: str = "Wait", temperature: float = 0.0, top_p: float = 1.0, seed: int = 0) -> Generation:
    """Generates after `prompt_ids`; with a `budget`, the output starts in thinking (`<think>` is
    appended to the prompt unless the chat template already ends with it)."""
    import torch  # loads torch: only when used

    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    end_ids, eos = encode(THINK_END), eos_ids(model, tokenizer)
    prefix = list(prompt_ids)
    if budget is not None and not tokenizer.decode(prefix[-4:]).rstrip().endswith(THINK_START):
        prefix += encode(THINK_START + "\n")
    wait_ids = encode(wait)
    thinking = budget is not None
    thought: list[int] = []
    answer: list[int] = []
    waits, forced = 0, False
    pending, cache = list(prefix), None
    # transformers 5.x renamed the KV-cache argument and output from past_key_values to cache
    cache_key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def produced() -> int:
        return len(thought) + (len(end_ids) if budget is not None and not thinking else 0) + len(answer)

    with torch.no_grad():
        while True:
            if thinking and budget.max_thinking_tokens is not None and len(thought) >= budget.max_thinking_tokens:
                pending += end_ids
                thinking, forced = False, True
            if produced() >= max_new_tokens:
                break
            out = model(input_ids=torch.tensor([pending], device=device), use_cache=True, **{cache_key: cache})
            cache, pending = out[cache_key], []
            token = _pick(out.logits[0, -1], temperature, top_p, generator)
            if not thinking:
                if token in eos:
                    break
                answer.append(token)
                pending = [token]
                continue
            thought.append(token)
            closed = len(thought) >= len(end_ids) and thought[-len(end_ids):] == end_ids
            if not closed and token not in eos:
                pending = [token]
                continue
            body = thought[:-len(end_ids)] if closed else thought[:-1]
            if len(body) < budget.min_thinking_tokens:  # too early: drop the delimiter, "Wait", go on
                thought = body + wait_ids
                waits += 1
                if closed and len(end_ids) > 1:  # the delimiter's first tokens are in the cache: rebuild it
                    pending, cache = prefix + thought, None
                else:
                    pending = list(wait_ids)
                continue
            thought, thinking = body, False
            pending = [token] if closed else list(end_ids)
    return Generation(
        thinking=tokenizer.decode(thought, skip_special_tokens=False) if budget is not None else None,
        answer=tokenizer.decode(answer, skip_special_tokens=True), thinking_tokens=len(thought), waits=waits,
        forced_end=forced, new_tokens=produced())
