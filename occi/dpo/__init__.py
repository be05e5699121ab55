"""Preference tuning (`occi dpo`): preference pairs, their checks, and DPO/SimPO through megatron-core."""
