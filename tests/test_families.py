"""The model-family registry (occi/families/): complete, torch-free, one-line refusals, each family's
tensor list equal to what transformers writes, and docs/families.md's table equal to the registry.
The import -> export exactness of every family: tests/test_import.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from hf_bases import BUILDERS, config_for
from occi import families
from occi.errors import OcciError


def test_the_registry_is_complete_and_imports_without_torch():
    """The registry, every family module, and the shape reading the tokenizer, eval and card stages
    use (occi/basemodel.py) load neither torch nor transformers, gguf or megatron."""
    code = ("import importlib, json, sys, occi.families, occi.basemodel, occi.report.card, occi.tokenizer.base\n"
            "names = list(occi.families.families())\n"
            "[importlib.import_module('occi.families.' + n) for n in names]\n"
            "occi.families.model_config({'model_type': 'llama', 'hidden_size': 64, 'intermediate_size': 96, "
            "'num_hidden_layers': 2, 'num_attention_heads': 4, 'vocab_size': 320}, None, 'config.json')\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'gguf', 'megatron') if m in sys.modules)\n"
            "print(json.dumps({'names': names, 'heavy': heavy}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout)
    assert seen["heavy"] == []
    modules = {p.stem for p in (REPO / "occi" / "families").glob("*.py")} - families.HELPERS - {"__init__"}
    assert set(seen["names"]) == modules
    assert set(BUILDERS) == modules, "every family needs a tiny-config builder in tests/hf_bases.py BUILDERS"
    for name, family in families.families().items():
        assert family.model_type == name and family.hf_class.endswith("ForCausalLM")
        assert isinstance(family.gguf, (families.GgufSpec, str))


def test_an_unknown_model_type_is_one_line_listing_the_registry(tmp_path):
    from occi.basemodel import read_config
    from occi.gguf.arch import spec_of

    listed = ", ".join(f.hf_class for f in families.families().values())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(OcciError) as caught:
        read_config(tmp_path)
    assert str(caught.value) == (f"{tmp_path / 'config.json'}: architecture 'GPT2LMHeadModel' (model_type 'gpt2') "
                                 f"is not supported; supported: {listed}")
    with pytest.raises(OcciError, match=f"hub: model_type 'bert' is not supported; supported: {listed}$"):
        families.family("bert", "hub")
    with pytest.raises(OcciError, match=r"\(model_type 'gpt2'\) is not supported"):
        spec_of({"model_type": "gpt2"}, "hf/config.json")
    for family in families.families().values():
        if isinstance(family.gguf, str):  # a family llama.cpp runs, but occi does not write yet
            with pytest.raises(OcciError) as caught:
                spec_of({"model_type": family.model_type}, "hf/config.json")
            assert str(caught.value) == f"hf/config.json: {family.hf_class} cannot be written as GGUF: {family.gguf}"


@pytest.mark.parametrize("kind", list(families.families()))
def test_the_tensor_list_is_what_transformers_writes(kind, tmp_path):
    """A family's mappings name exactly the tensors (and shapes) a checkpoint of its tiny base holds
    on disk, and make each megatron tensor once."""
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    config = config_for(kind)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(str(tmp_path))
    on_disk = {}
    for file in tmp_path.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as handle:
            on_disk.update({name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()})
    family = families.family(kind, "test")
    model = families.model_config(json.loads((tmp_path / "config.json").read_text()), None, "test")
    expected = family.hf_shapes(model)
    if model.tied_embeddings:
        on_disk.pop("lm_head.weight", None)  # transformers may write the tied copy
    assert expected == on_disk
    megatron = [name for mapping in family.mappings(model) for name in mapping.megatron_names()]
    assert len(megatron) == len(set(megatron))


def _docs_table() -> dict[str, dict[str, str]]:
    text = (REPO / "docs" / "families.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    table = {}
    for line in rows[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0].startswith("`"):
            table[cells[0].strip("`")] = dict(zip(header, cells))
    return table


def test_the_docs_table_is_the_registrys():
    table = _docs_table()
    assert list(table) == list(families.families()), "docs/families.md: rows are not the registry's families"
    for name, family in families.families().items():
        row = {"family": f"`{name}`", "class": family.hf_class, **families.capabilities(family)}
        assert table[name] == row, (f"docs/families.md: the row of {name} differs from the registry; "
                                    f"paste occi.families.capability_table():\n{families.capability_table()}")


def test_a_recipe_exports_to_the_family_that_holds_its_shape():
    from occi.train.config import ModelConfig

    shape = dict(num_layers=2, hidden_size=64, ffn_hidden_size=96, num_attention_heads=4, num_query_groups=2,
                 seq_length=32)
    experts = dict(shape, num_experts=4, moe_top_k=2)
    chosen = {name: families.recipe_family(ModelConfig(**fields)).model_type for name, fields in {
        "dense": shape, "routed": experts, "qk_norm": dict(experts, qk_norm=True),
        "shared": dict(experts, moe_shared_expert_ffn_hidden_size=64, moe_shared_expert_gate=True)}.items()}
    assert chosen == {"dense": "llama", "routed": "mixtral", "qk_norm": "qwen3_moe", "shared": "qwen2_moe"}
    with pytest.raises(OcciError) as caught:
        families.recipe_family(ModelConfig(**experts, moe_balancing="expert_bias"))
    assert str(caught.value).startswith("model: no transformers architecture holds this shape exactly (")
    assert "MixtralForCausalLM: moe_balancing expert_bias routes with sigmoid scores and a bias" in str(caught.value)
