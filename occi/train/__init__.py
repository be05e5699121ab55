"""Stage 3: megatron-core pretraining, checkpoints and export to transformers."""
import warnings

# megatron-core announces its pure-PyTorch fallbacks on every import when Transformer Engine and
# Apex are absent, as on every CPU machine; occi chooses those fallbacks on purpose there.
for _message in (".*Transformer Engine and Apex are not installed.*", ".*Apex is not installed.*",
                 ".*Transformer Engine is not installed.*"):
    warnings.filterwarnings("ignore", message=_message)
