"""Model features megatron-core's local (no Transformer Engine) layer spec lacks, as small modules
that occi/train/model.py puts into the layer spec."""
