"""`occi merge`: linear, task-arithmetic and TIES merges checked tensor by tensor on tiny random
Qwen2 models whose weights are known (the expected tensors computed here with numpy, not with
occi's code), TIES on a hand-made case worked out on paper; mismatched models and bad settings fail
in one line. The run's own stage models and last checkpoints: tests/test_dpo.py."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from conftest import occi
from hf_bases import make_base


def merge_config(folder: Path, models: list[str], weights: list[float] | None = None, **settings) -> Path:
    merge = {"models": models, **({"weights": weights} if weights is not None else {}), **settings}
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
    for models, weights, settings, expected in (
            (["a", "wide"], None, {}, "has shape"), (["a", "a"], [1.0], {}, "2 models"),
            (["a", "a"], [1.0, -1.0], {}, "weights[1]"), (["a"], None, {}, "at least 2"),
            (["a"], None, {"method": "ties"}, "base: method ties needs"),
            (["a"], None, {"method": "ties", "base": "a", "density": 0}, "density"),
            (["a", "a"], None, {"base": "a"}, "only task_arithmetic and ties"),
            (["a"], None, {"method": "task_arithmetic", "base": "wide"}, "has shape")):
        config = merge_config(tmp_path, models, weights, **settings)
        result = occi("merge", str(config), "--run-dir", str(tmp_path / f"run-{expected}"))
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr[-2000:]
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr


def save_toy(folder: Path, values: list[float]) -> Path:
    """A one-tensor "model": enough for merge(), which reads config.json and *.safetensors."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "toy"}))
    save_file({"w": torch.tensor([values], dtype=torch.float32)}, str(folder / "model.safetensors"))
    return folder


def test_ties_on_a_hand_made_case(tmp_path):
    """Task vectors of three models (exact binary fractions) around a base of ones, density 0.5
    (3 of 6 entries kept), worked out by hand:
      trimmed t1 = [.5, 0, .375, -2, 0, 0], t2 = [0, -.5, .625, 1, 0, 0], t3 = [0, 1, -.75, .5, 0, 0];
      equal weights: summed [.5, .5, .25, -.5, 0, 0] elects + + + - 0 0; agreeing means
        [.5, 1, (.375 + .625) / 2, -2, 0, 0];
      weights 1, 1, 3: summed [.5, 2.5, -1.25, .5, 0, 0] elects + + - + 0 0; weighted means
        [.5, 1, -.75, (1 x 1 + 3 x .5) / 4, 0, 0]."""
    from safetensors.torch import load_file

    from occi.merge.stage import merge

    base = save_toy(tmp_path / "base", [1.0] * 6)
    tasks = [[0.5, -0.125, 0.375, -2.0, 0.0, 0.0625], [-0.25, -0.5, 0.625, 1.0, 0.0, -0.03125],
             [0.125, 1.0, -0.75, 0.5, 0.0, 0.015625]]
    models = [save_toy(tmp_path / f"m{n}", [1.0 + t for t in task]) for n, task in enumerate(tasks)]
    for weights, expected in (([1, 1, 1], [1.5, 2.0, 1.5, -1.0, 1.0, 1.0]),
                              ([1, 1, 3], [1.5, 2.0, 0.25, 1.625, 1.0, 1.0])):
        out = tmp_path / f"merged-{weights[2]}"
        lineage = merge(models, weights, out, "ties", base, density=0.5)
        assert load_file(str(out / "model.safetensors"))["w"].tolist() == [expected]
        assert lineage["method"] == "ties" and lineage["density"] == 0.5 and lineage["base"]["path"] == str(base)


def numpy_ties(base, tasks, weights, density):
    """TIES as the paper states it, for one tensor, written with numpy apart from occi's torch code."""
    import numpy as np

    keep = int(np.ceil(density * base.size))
    trimmed = []
    for task in tasks:
        flat = task.ravel().copy()
        flat[np.argsort(-np.abs(flat), kind="stable")[keep:]] = 0.0
        trimmed.append(flat.reshape(task.shape))
    trimmed, weight = np.stack(trimmed), np.array(weights, dtype=np.float64).reshape(-1, *[1] * base.ndim)
    sign = np.sign((weight * trimmed).sum(0))
    agree = (trimmed != 0) & (np.sign(trimmed) == sign)
    mass = (weight * agree).sum(0)
    return base + np.divide((weight * trimmed * agree).sum(0), mass, out=np.zeros_like(base), where=mass > 0)


def test_task_arithmetic_and_ties_on_tiny_qwen2_models_tensor_by_tensor(tmp_path):
    """Two models made from a base by adding known random task vectors; the merges through the
    command line against the formulas in float64, with the base and the weights in the lineage."""
    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file

    make_base(tmp_path / "base", "qwen2", seed=0)
    base = {}
    for path in sorted((tmp_path / "base").glob("*.safetensors")):
        base.update(load_file(str(path)))
    generator = torch.Generator().manual_seed(7)
    for name in ("a", "b"):
        shutil.copytree(tmp_path / "base", tmp_path / name)
        for path in (tmp_path / name).glob("*.safetensors"):
            tensors = load_file(str(path))
            save_file({key: value + 0.01 * torch.randn(value.shape, generator=generator) for key, value in tensors.items()},
                      str(path), metadata={"format": "pt"})
    parents = [{}, {}]
    for parent, name in zip(parents, ("a", "b")):
        for path in sorted((tmp_path / name).glob("*.safetensors")):
            parent.update({k: v.double().numpy() for k, v in load_file(str(path)).items()})
    for method, settings in (("task_arithmetic", {}), ("ties", {"density": 0.3})):
        run_dir = tmp_path / f"run-{method}"
        config = merge_config(tmp_path, ["a", "b"], [0.5, 1.5], method=method, base="./base", **settings)
        result = occi("merge", str(config), "--run-dir", str(run_dir))
        assert result.returncode == 0, result.stderr[-3000:]
        merged = load_file(str(run_dir / "merged" / "model.safetensors"))
        assert set(merged) == set(base)
        for name, tensor in merged.items():
            origin = base[name].double().numpy()
            tasks = [parent[name] - origin for parent in parents]
            expected = (origin + 0.5 * tasks[0] + 1.5 * tasks[1] if method == "task_arithmetic"
                        else numpy_ties(origin, tasks, [0.5, 1.5], 0.3))
            assert torch.equal(tensor, torch.from_numpy(expected).float()), (method, name)
        lineage = json.loads((run_dir / "merged" / "occi_merge.json").read_text())
        assert lineage["method"] == method and Path(lineage["base"]["path"]).name == "base"
        assert [(Path(p["path"]).name, p["weight"]) for p in lineage["parents"]] == [("a", 0.5), ("b", 1.5)]
    assert not np.array_equal(load_file(str(tmp_path / "run-ties" / "merged" / "model.safetensors"))["lm_head.weight"],
                              load_file(str(tmp_path / "run-task_arithmetic" / "merged" / "model.safetensors"))["lm_head.weight"])
