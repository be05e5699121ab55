"""The language blend: how often training draws from each language."""
from __future__ import annotations

from occi.errors import OcciError


def temperature_weights(tokens: dict[str, int], alpha: float) -> dict[str, float]:
    """weight(L) = tokens(L)**alpha / sum over languages; languages without tokens get 0."""
    powered = {code: (count ** alpha if count > 0 else 0.0) for code, count in tokens.items()}
    total = sum(powered.values())
    if total == 0:
        raise OcciError("the blend is empty: no language has any training tokens")
    return {code: value / total for code, value in powered.items()}


def explicit_weights(tokens: dict[str, int], weights: dict[str, float]) -> dict[str, float]:
    """The configured weights, normalised; every language of the run must have one."""
    missing = [code for code in tokens if code not in weights]
    if missing:
        raise OcciError(f"data.weights: no weight for {', '.join(missing)}; give every run language a weight or remove `weights`")
    empty = [code for code in tokens if weights[code] > 0 and tokens[code] == 0]
    if empty:
        raise OcciError(f"data.weights: {', '.join(empty)} has a weight but no training tokens")
    total = sum(weights[code] for code in tokens)
    if total <= 0:
        raise OcciError("data.weights: the weights add up to 0")
    return {code: weights[code] / total for code in tokens}


def with_replay(weights: dict[str, float], replay: dict[str, float]) -> dict[str, float]:
    """Continual pretraining's replay: the `replay` languages (the base's main ones) get their fixed
    share of every batch; the other languages share the rest in their own proportions."""
    fixed = sum(replay.values())
    others = {code: w for code, w in weights.items() if code not in replay}
    rest = sum(others.values())
    if rest <= 0:
        return {code: replay.get(code, 0.0) / fixed for code in weights}
    return {code: replay[code] if code in replay else (1.0 - fixed) * w / rest for code, w in weights.items()}


def megatron_data_path(weights: dict[str, float], prefixes: dict[str, str]) -> str:
    """The same blend as Megatron-LM's `--data-path w1 prefix1 w2 prefix2 ...`."""
    return " ".join(f"{weights[code]:.6f} {prefixes[code]}" for code in weights if weights[code] > 0)
