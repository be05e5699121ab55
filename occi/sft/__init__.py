"""Supervised fine-tuning: chat data with its checks (data.py), the chat template (template.py),
packing with per-conversation masks (packing.py), megatron-core training on top of the
pretraining trainer (trainer.py) and the `occi sft` stage (stage.py)."""
