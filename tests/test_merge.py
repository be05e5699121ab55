"""`occi merge`: the weighted average of exported models, checked tensor by tensor on two tiny
random Qwen2 models whose weights are known; mismatched models and weights fail in one line."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from conftest import occi
from hf_bases import make_base


def merge_config(folder: Path, models: list[str], weights: list[float] | None = None) -> Path:
    merge = {"models": models, **({"weights": weights} if weights is not None else {})}
    config = {"name": "m", "languages": ["en"], "corpora": {"recipe": "demo", "workers": 1}, "merge": merge}
    path = folder / "merge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_linear_merge_is_the_weighted_average_tensor_by_tensor_with_its_lineage(tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    make_base(tmp_path / "a", "qwen2", seed=0)
    make_base(tmp_path / "b", "qwen2", seed=1)
    result = occi("merge", str(merge_config(tmp_path, ["a", "b"], [1, 3])), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    merged = load_file(str(tmp_path / "run" / "merged" / "model.safetensors"))
    parents = [{}, {}]
    for parent, name in zip(parents, ("a", "b")):
        for path in sorted((tmp_path / name).glob("*.safetensors")):
            parent.update(load_file(str(path)))
    assert set(merged) == set(parents[0]) and len(merged) > 10
    for name, tensor in merged.items():
        expected = (0.25 * parents[0][name].double() + 0.75 * parents[1][name].double()).float()
        assert tensor.dtype == torch.float32 and torch.equal(tensor, expected), name
    lineage = json.loads((tmp_path / "run" / "merged" / "occi_merge.json").read_text())
    assert [(Path(p["path"]).name, p["weight"], p["share"]) for p in lineage["parents"]] == [("a", 1, 0.25),
                                                                                            ("b", 3, 0.75)]
    assert all(len(p["weights_sha256"]) == 64 for p in lineage["parents"])
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "merged")
    assert torch.equal(model.state_dict()["model.norm.weight"], merged["model.norm.weight"])
    assert (tmp_path / "run" / "merged" / "tokenizer.json").read_bytes() == (tmp_path / "a" / "tokenizer.json").read_bytes()


def test_models_of_another_shape_and_bad_weights_fail_in_one_line(tmp_path):
    make_base(tmp_path / "a", "qwen2", seed=0)
    make_base(tmp_path / "wide", "qwen2", seed=1, intermediate_size=128)
    for models, weights, expected in ((["a", "wide"], None, "has shape"), (["a", "a"], [1.0], "2 models"),
                                      (["a", "a"], [1.0, -1.0], "weights[1]"), (["a"], None, "at least two")):
        result = occi("merge", str(merge_config(tmp_path, models, weights)), "--run-dir", str(tmp_path / "run"))
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr[-2000:]
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
