"""Model features megatron-core's local (pure PyTorch) layer spec lacks, each a small module wired
into occi/train/model.py: (1 + w) RMSNorm in float32, norms after attention and MLP, a RoPE base
of its own for sliding-window layers, scaled input embeddings, the tanh-approximated GELU, xIELU,
latent attention's core attention without Transformer Engine."""
