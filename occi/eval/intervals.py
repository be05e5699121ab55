"""Confidence intervals for a share of successes, and the number of paired prompts that tells two
models apart (the statistics behind the fidelity suite's prompt count, docs/stages/evaluation.md)."""
from __future__ import annotations

import math
from statistics import NormalDist

Z95 = NormalDist().inv_cdf(0.975)
"""The normal quantile of a two-sided 95% interval (1.95996...)."""


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a binomial share: unlike the normal approximation it stays
    inside [0, 1] and is not empty at 0 or n successes, which fidelity values often are."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"wilson: expected 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    share = successes / trials
    z2 = z * z
    centre = (share + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(share * (1 - share) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def _binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def sign_test_power(prompts: int, better: float, worse: float, alpha: float = 0.05) -> float:
    """Power of the exact two-sided McNemar (sign) test on paired answers: `better` is the share of
    prompts only the better model answers in the right language, `worse` the share only the worse
    one does (their difference is the fidelity difference)."""
    power = 0.0
    discordant = better + worse
    for pairs in range(prompts + 1):
        weight = math.comb(prompts, pairs) * discordant ** pairs * (1 - discordant) ** (prompts - pairs)
        if weight < 1e-15:
            continue
        # the smallest count for the better model that the test calls significant with this many pairs
        needed = next((k for k in range(pairs + 1) if 2 * _binomial_tail(pairs, k, 0.5) <= alpha), None)
        if needed is not None:
            power += weight * _binomial_tail(pairs, needed, better / discordant)
    return power


def paired_prompts_needed(better: float, worse: float, alpha: float = 0.05, power: float = 0.8,
                          most: int = 2000) -> int:
    """The fewest paired prompts at which the exact McNemar test reaches `power`."""
    for prompts in range(1, most + 1):
        if sign_test_power(prompts, better, worse, alpha) >= power:
            return prompts
    raise ValueError(f"more than {most} prompts needed for {better} vs {worse}")
