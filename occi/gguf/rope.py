"""RoPE scaling of a config.json as llama.cpp reads it from a GGUF file.

- `llama3` (Llama 3.1 / 3.2): llama.cpp divides each rotary frequency by a per-frequency factor
  it reads from the `rope_freqs` tensor (its `llama` graph only), so the factors are computed
  here from the scaling parameters, as transformers scales the frequencies: kept where the
  wavelength is below original_max_position_embeddings / high_freq_factor, divided by `factor`
  above original_max_position_embeddings / low_freq_factor, and in between a blend whose weight
  on the kept frequency grows linearly in original_max_position_embeddings / wavelength.
- `linear`: llama.cpp's linear scaling (positions divided by the factor).
- `yarn`: llama.cpp's YaRN with the factor, the original context and beta_fast / beta_slow; its
  attention factor is transformers' default (0.1 ln(factor) + 1), so a config that sets its own
  (attention_factor, mscale, mscale_all_dim) or turns off the rounding (truncate) is refused, except
  gpt-oss, whose every published config turns it off: llama.cpp runs it rounded, which moves
  the logits slightly (docs/gguf.md).
Anything else (dynamic, longrope, ...) is refused in one line naming the kind.
"""
from __future__ import annotations

import math

import gguf
import numpy as np

from occi.errors import OcciError

READS_ROPE_FREQS = (gguf.MODEL_ARCH.LLAMA, gguf.MODEL_ARCH.APERTUS)
"""llama.cpp architectures whose graph divides the rotary frequencies by a `rope_freqs` tensor."""

ROUNDS_UNTRUNCATED_YARN = (gguf.MODEL_ARCH.GPT_OSS,)
"""Architectures whose published YaRN is untruncated (truncate false) but which llama.cpp runs with
its rounded correction range all the same (its own converter writes them so): written, not refused."""

YARN_LOG_MULTIPLIER = (gguf.MODEL_ARCH.DEEPSEEK2,)
"""Architectures whose llama.cpp graph reads YaRN's mscale_all_dim (rope.scaling.yarn_log_multiplier,
0.1 x mscale_all_dim) for the latent attention's softmax scale, as transformers' DeepseekV3 does."""

YARN_DEFAULTS = {"beta_fast": 32.0, "beta_slow": 1.0}
"""transformers' YaRN defaults, written when a config leaves them out."""


def scaling_of(config: dict) -> dict:
    """The RoPE scaling parameters of a config.json (transformers 5's rope_parameters or 4's
    rope_scaling), with `rope_type` set; {} when unscaled."""
    params = dict(config.get("rope_scaling") or config.get("rope_parameters") or {})
    kind = params.get("rope_type") or params.get("type") or "default"
    return {} if kind == "default" else {**params, "rope_type": kind}


def check(config: dict, arch: gguf.MODEL_ARCH, where: str) -> dict:
    """The scaling parameters, or a one-line OcciError when llama.cpp cannot run them exactly."""
    scaling = scaling_of(config)
    kind = scaling.get("rope_type")
    if not scaling:
        return scaling
    if kind == "llama3":
        if arch not in READS_ROPE_FREQS:
            raise OcciError(f"{where}: RoPE scaling 'llama3' is written to GGUF only for llama.cpp's "
                            f"{', '.join(gguf.MODEL_ARCH_NAMES[a] for a in READS_ROPE_FREQS)} architecture "
                            f"(its rope_freqs tensor), not {gguf.MODEL_ARCH_NAMES[arch]}")
        if float(scaling["high_freq_factor"]) == float(scaling["low_freq_factor"]):
            raise OcciError(f"{where}: RoPE scaling 'llama3' with high_freq_factor equal to low_freq_factor "
                            f"({scaling['low_freq_factor']}) has no blend band; expected high_freq_factor > low_freq_factor")
        return scaling
    if kind == "linear":
        return scaling
    if kind == "yarn":
        for key in ("attention_factor",) + (() if arch in YARN_LOG_MULTIPLIER else ("mscale", "mscale_all_dim")):
            if scaling.get(key) is not None:
                raise OcciError(f"{where}: RoPE scaling 'yarn' with {key} {scaling[key]} is not written to GGUF by "
                                "occi: llama.cpp's YaRN attention factor is 0.1 ln(factor) + 1; remove the key")
        if scaling.get("truncate") is False and arch not in ROUNDS_UNTRUNCATED_YARN:
            raise OcciError(f"{where}: RoPE scaling 'yarn' with truncate false is not written to GGUF by occi: "
                            "llama.cpp rounds the YaRN correction range to whole dimensions")
        return scaling
    raise OcciError(f"{where}: RoPE scaling {kind!r} is not written to GGUF by occi; llama.cpp runs "
                    "'llama3', 'linear' and 'yarn' as transformers does")


def add_scaling_hparams(writer: gguf.GGUFWriter, scaling: dict, config: dict) -> None:
    """The rope.scaling.* keys of linear and YaRN scaling (llama3's is the rope_freqs tensor)."""
    kind = scaling.get("rope_type")
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(scaling["factor"]))
    elif kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(scaling["factor"]))
        original = scaling.get("original_max_position_embeddings") or config["max_position_embeddings"]
        writer.add_rope_scaling_orig_ctx_len(int(original))
        writer.add_rope_scaling_yarn_beta_fast(float(scaling.get("beta_fast") or YARN_DEFAULTS["beta_fast"]))
        writer.add_rope_scaling_yarn_beta_slow(float(scaling.get("beta_slow") or YARN_DEFAULTS["beta_slow"]))
        if scaling.get("mscale_all_dim"):
            writer.add_rope_scaling_yarn_log_mul(0.1 * float(scaling["mscale_all_dim"]))


def llama3_frequency_factors(scaling: dict, head_dim: int, theta: float) -> np.ndarray:
    """llama.cpp's rope_freqs for `llama3` scaling: what each rotary frequency is divided by."""
    factor = float(scaling["factor"])
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    original = float(scaling["original_max_position_embeddings"])
    factors = []
    for i in range(0, head_dim, 2):
        wavelength = 2 * math.pi * theta ** (i / head_dim)
        if wavelength < original / high:
            factors.append(1.0)
        elif wavelength > original / low:
            factors.append(factor)
        else:
            kept = (original / wavelength - low) / (high - low)
            factors.append(1.0 / (kept + (1.0 - kept) / factor))
    return np.array(factors, dtype=np.float32)
