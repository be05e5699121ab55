"""Every benchmark family's real lm-eval task configuration scored offline.

For each family a few documents in the upstream dataset's own schema are written here (text made
up for occi); a task file includes the real task configuration (lm-eval's, or occi's shipped EU20
or SIB-200 leaf) and replaces only where the data comes from (`dataset_path: json` and local data
files). SIB-200's leaf reads tab-separated files with lm-eval's csv loader, so its documents are
written as such a file and only its `data_files` are replaced. One lm-eval call scores a tiny
random Llama on all of them, and each metric is checked against a count made by hand from the
model's own log-likelihoods or generations and the gold answers written below.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO
from test_eval import build_tiny_llama

N = 4  # documents per family


def _sentence(i: int, word: str) -> str:
    return f"Die {word} Nummer {i} steht im Garten neben dem Haus."


def _rows(family: str) -> tuple[str, list[dict], list]:
    """family -> (split the task scores, documents in the upstream schema, gold per document)."""
    gold = [i % 4 for i in range(N)]
    two = [i % 2 for i in range(N)]
    options = lambda i: [f"Antwort {chr(65 + k)} zu Frage {i}" for k in range(4)]  # noqa: E731
    if family in ("arc", "arc_mt", "arc_eu20"):
        return "test", [{"id": f"q{i}", "question": f"Was wächst im Garten {i}?",
                         "choices": {"text": options(i), "label": list("ABCD")},
                         "answerKey": "ABCD"[gold[i]]} for i in range(N)], gold
    if family == "arc_okapi":
        return "test", [{"id": f"q{i}", "instruction": f"Was wächst im Garten {i}?",
                         **{f"option_{k}": o for k, o in zip("abcd", options(i))}, "option_e": "",
                         "answer": "ABCD"[gold[i]]} for i in range(N)], gold
    if family in ("hellaswag", "hellaswag_eu20"):
        return ("val" if family == "hellaswag" else "validation"), [
            {"ind": i, "activity_label": "Gartenarbeit", "ctx_a": f"Eine Frau gießt Blumen {i}.",
             "ctx_b": "sie", "ctx": "", "endings": [f"nimmt die Kanne {k}." for k in range(4)],
             "source_id": "x", "split": "val", "split_type": "indomain", "label": str(gold[i])} for i in range(N)], gold
    if family == "mmlu":
        return "test", [{"instruction": f"Wie viele Beine hat Tier {i}?",
                         **{f"option_{k}": o for k, o in zip("abcd", options(i))},
                         "answer": "ABCD"[gold[i]], "id": f"m{i}"} for i in range(N)], gold
    if family == "mmlu_eu20":
        return "test", [{"question": f"Wie viele Beine hat Tier {i}?", "choices": options(i),
                         "answer": gold[i], "id": f"philosophy/test/{i}"} for i in range(N)], gold
    if family == "truthfulqa":
        labels = [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]]
        return "val", [{"question": f"Ist Haus {i} blau?",
                        "mc1_targets_choices": ["Ja.", "Nein."], "mc1_targets_labels": [1, 0],
                        "mc2_targets_choices": ["Ja.", "Nein.", "Vielleicht."],
                        "mc2_targets_labels": labels[i]} for i in range(N)], labels
    if family == "truthfulqa_eu20":
        labels = [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]]
        return "validation", [{"question": f"Ist Haus {i} blau?", "id": str(i),
                               "mc1_targets": {"choices": ["Ja.", "Nein."], "labels": [1, 0]},
                               "mc2_targets": {"choices": ["Ja.", "Nein.", "Vielleicht."], "labels": labels[i]}}
                              for i in range(N)], labels
    if family == "belebele":
        return "test", [{"flores_passage": _sentence(i, "Bank"), "question": "Wo steht die Bank?",
                         **{f"mc_answer{k + 1}": o for k, o in enumerate(options(i))},
                         "correct_answer_num": str(gold[i] + 1)} for i in range(N)], gold
    if family == "xnli":
        three = [i % 3 for i in range(N)]
        return "validation", [{"premise": _sentence(i, "Katze"), "hypothesis": "Die Katze schläft.",
                               "label": three[i]} for i in range(N)], three
    if family == "xcopa":
        return "test", [{"premise": "L'uomo aprì l'ombrello.", "choice1": "Pioveva.", "choice2": "Era sera.",
                         "question": ("cause", "effect")[i % 2], "label": two[i], "idx": i} for i in range(N)], two
    if family == "xstorycloze":
        return "eval", [{"story_id": str(i), **{f"input_sentence_{k}": f"Frase {k} de la historia {i}."
                                                 for k in range(1, 5)},
                         "sentence_quiz1": "Fue feliz.", "sentence_quiz2": "Fue triste.",
                         "answer_right_ending": two[i] + 1} for i in range(N)], two
    if family == "global_piqa":
        return "test", [{"prompt": f"Um Tomaten {i} zu ernten,", "solution0": "pflückt man sie.",
                         "solution1": "malt man sie an.", "label": two[i]} for i in range(N)], two
    if family == "multiblimp":
        return "train", [{"sen": f"Die Kinder spielen im Garten {i}.", "wrong_sen": f"Die Kinder spielt im Garten {i}."}
                         for i in range(N)], [0] * N
    if family == "paws":
        return "test", [{"id": i, "sentence1": _sentence(i, "Rose"), "sentence2": "Eine Rose steht im Garten.",
                         "label": two[i]} for i in range(N)], two
    if family == "lambada":
        return "test", [{"text": f"Im Garten {i} wächst eine große Blume"} for i in range(N)], None
    if family == "translation":
        return "test", [{"translation": {"en": f"The house number {i} is red.", "de": f"Das Haus Nummer {i} ist rot."}}
                        for i in range(N)], [f"Das Haus Nummer {i} ist rot." for i in range(N)]
    if family == "gsm8k_eu20":
        return "test", [{"question": f"Anna hat {i} Äpfel und kauft 2 dazu. Wie viele hat sie?",
                         "answer": f"{i} + 2 = {i + 2}\n#### {i + 2}", "id": str(i)} for i in range(N)], \
            [str(i + 2) for i in range(N)]
    if family == "sib200":
        from occi.eval.sib200 import TOPICS

        topics = [(3 * i + 1) % len(TOPICS) for i in range(N)]
        return "test", [{"index_id": 100 + i, "category": TOPICS[topics[i]], "text": _sentence(i, "Mannschaft")}
                        for i in range(N)], topics
    raise KeyError(family)


EU20 = REPO / "eval" / "tasks" / "occi_eu20"
SIB200 = REPO / "eval" / "tasks" / "occi_sib200"
# task -> (data schema written above, the configuration it reuses: a file of lm-eval's task folder,
# relative to it, or occi's EU20 leaf); the coverage tests check these tasks are in lm-eval's index
TASKS = {
    "arc_de": ("arc_okapi", "okapi/arc_multilingual/arc_de.yaml"),
    "arc_challenge_mt_fi": ("arc_mt", "arc_mt/arc_challenge_mt_fi.yaml"),
    "hellaswag_de": ("hellaswag", "okapi/hellaswag_multilingual/hellaswag_de.yaml"),
    "m_mmlu_de": ("mmlu", "okapi/mmlu_multilingual/m_mmlu_de.yaml"),
    "truthfulqa_de_mc2": ("truthfulqa", "okapi/truthfulqa_multilingual/truthfulqa_de_mc2.yaml"),
    "belebele_deu_Latn": ("belebele", "belebele/belebele_deu_Latn.yaml"),
    "xnli_de": ("xnli", "xnli/xnli_de.yaml"),
    "xcopa_it": ("xcopa", "xcopa/default_it.yaml"),
    "xstorycloze_es": ("xstorycloze", "xstorycloze/default_es.yaml"),
    "global_piqa_nonparallel_cloze_deu_latn": ("global_piqa", "global_piqa/nonparallel_cloze/deu_latn.yaml"),
    "multiblimp_deu": ("multiblimp", "multiblimp/multiblimp_deu.yaml"),
    "paws_de": ("paws", "paws-x/paws_de.yaml"),
    "lambada_openai_mt_de": ("lambada", "lambada_multilingual/lambada_mt_de.yaml"),
    "wmt16-en-de": ("translation", "translation/wmt16_en-de.yaml"),
    "arc_eu20_de": ("arc_eu20", EU20 / "arc" / "arc_eu20_de.yaml"),
    "hellaswag_eu20_de": ("hellaswag_eu20", EU20 / "hellaswag" / "hellaswag_eu20_de.yaml"),
    "mmlu_eu20_de": ("mmlu_eu20", EU20 / "mmlu" / "mmlu_eu20_de.yaml"),
    "truthfulqa_eu20_de": ("truthfulqa_eu20", EU20 / "truthfulqa" / "truthfulqa_eu20_de.yaml"),
    "gsm8k_eu20_de": ("gsm8k_eu20", EU20 / "gsm8k" / "gsm8k_eu20_de.yaml"),
    "sib200_de": ("sib200", SIB200 / "sib200_de.yaml"),
}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    from occi.eval.model import load

    folder = tmp_path_factory.mktemp("scoring")
    model = build_tiny_llama(folder / "tiny-llama", ["de", "fr", "el"])
    import lm_eval.tasks

    upstream = Path(lm_eval.tasks.__file__).parent
    tasks_dir = folder / "tasks"
    tasks_dir.mkdir()
    golds = {}
    for task, (schema, source) in TASKS.items():
        split, rows, gold = _rows(schema)
        config = str(upstream / source)  # an absolute path of occi's folders stays as it is
        assert yaml.safe_load(Path(config).read_text().replace("!function", ""))["task"] == task
        # every split the configuration names reads the same documents, so the scored one is ours
        resolved = load_yaml(config, resolve_func=False)
        splits = {resolved.get(key) for key in ("training_split", "validation_split", "test_split", "fewshot_split")}
        (folder / "data").mkdir(exist_ok=True)
        if resolved["dataset_path"] == "csv":  # SIB-200: a TSV file, read by the leaf's own loader settings
            data = folder / "data" / f"{task}.tsv"
            with data.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
                writer.writeheader()
                writer.writerows(rows)
            source_override = {"dataset_kwargs": {**resolved["dataset_kwargs"], "data_files": {}}}
        else:
            data = folder / "data" / f"{task}.jsonl"
            data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
            source_override = {"dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": {}}}
        source_override["dataset_kwargs"]["data_files"] = {name: str(data) for name in (splits | {split}) - {None}}
        (tasks_dir / f"{task}.yaml").write_text(yaml.safe_dump({"include": config, "task": task, **source_override}),
                                                encoding="utf-8")
        golds[task] = gold
    lm = load(str(model), "cpu", "float32", 8)
    results = simple_evaluate(model=lm, tasks=list(TASKS), num_fewshot=0, log_samples=True,
                              task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
                              gen_kwargs="max_gen_toks=24", random_seed=0, numpy_random_seed=0, torch_random_seed=0)
    results["occi_model"] = str(model)
    return results, golds


def _lls(sample) -> list[float]:
    return [float(r[0]) for r in sample["filtered_resps"]]


def test_every_family_is_scored_offline_through_its_real_configuration(scored):
    results, _ = scored
    assert set(TASKS) <= set(results["results"]), sorted(set(TASKS) - set(results["results"]))
    for task in TASKS:
        assert {s["doc_id"] for s in results["samples"][task]} == set(range(N)), task


@pytest.mark.parametrize("task", [t for t, (schema, _) in TASKS.items()
                                  if schema not in ("truthfulqa", "truthfulqa_eu20", "lambada", "translation", "gsm8k_eu20")])
def test_multiple_choice_accuracy_matches_a_hand_count(scored, task):
    results, golds = scored
    samples = sorted(results["samples"][task], key=lambda s: s["doc_id"])
    hits = [int(np.argmax(_lls(s)) == golds[task][s["doc_id"]]) for s in samples]
    assert results["results"][task]["acc,none"] == pytest.approx(sum(hits) / N)
    # the documents written above are what the model was asked about
    assert all(len(s["filtered_resps"]) == (3 if "xnli" in task else 7 if "sib200" in task else 4 if len(set(golds[task])) > 2
                                             or "arc" in task or "mmlu" in task or "hellaswag" in task
                                             or "belebele" in task else 2) for s in samples), task


def test_sib200_reads_the_upstream_tsv_schema_and_scores_both_accuracies(scored):
    """Seven topics per document; acc_norm divides each log-likelihood by the topic's length."""
    from occi.eval.sib200 import TOPICS

    results, golds = scored
    samples = sorted(results["samples"]["sib200_de"], key=lambda s: s["doc_id"])
    assert [s["doc"]["category"] for s in samples] == [TOPICS[g] for g in golds["sib200_de"]]
    assert [s["doc"]["index_id"] for s in samples] == [100 + i for i in range(N)]  # the header was read as such
    lengths = np.array([len(topic) for topic in TOPICS], dtype=float)
    plain = [int(np.argmax(_lls(s)) == golds["sib200_de"][s["doc_id"]]) for s in samples]
    normed = [int(np.argmax(np.array(_lls(s)) / lengths) == golds["sib200_de"][s["doc_id"]]) for s in samples]
    assert results["results"]["sib200_de"]["acc,none"] == pytest.approx(sum(plain) / N)
    assert results["results"]["sib200_de"]["acc_norm,none"] == pytest.approx(sum(normed) / N)


@pytest.mark.parametrize("task", ["truthfulqa_de_mc2", "truthfulqa_eu20_de"])
def test_truthfulqa_mc2_is_the_probability_mass_on_true_answers(scored, task):
    results, golds = scored
    masses = []
    for s in results["samples"][task]:
        probs = np.exp(np.array(_lls(s)))
        masses.append(probs[np.array(golds[task][s["doc_id"]]) == 1].sum() / probs.sum())
    assert results["results"][task]["acc,none"] == pytest.approx(float(np.mean(masses)))


def test_lambada_accuracy_is_the_share_of_greedy_last_words(scored):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    results, _ = scored
    task = "lambada_openai_mt_de"
    samples = results["samples"][task]
    # the hand count: run the model here, token by token greedy over the last word
    model_dir = Path(results["occi_model"])
    greedy = [bool(s["filtered_resps"][0][1]) if isinstance(s["filtered_resps"][0], (list, tuple))
              else bool(s["filtered_resps"][1]) for s in samples]
    assert results["results"][task]["acc,none"] == pytest.approx(sum(greedy) / N)
    # the same judgement made here with transformers alone
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    for s, expected in zip(samples, greedy):
        context, word = s["arguments"][0]
        whole = tokenizer(context + word).input_ids
        start = len(tokenizer(context).input_ids)
        with torch.no_grad():
            logits = model(torch.tensor([whole])).logits[0]
        assert bool((logits[start - 1:-1].argmax(-1) == torch.tensor(whole[start:])).all()) == expected


def test_generation_metrics_match_a_hand_count(scored):
    import re

    import sacrebleu

    results, golds = scored
    samples = sorted(results["samples"]["wmt16-en-de"], key=lambda s: s["doc_id"])
    outputs = [s["filtered_resps"][0] for s in samples]
    refs = [golds["wmt16-en-de"][s["doc_id"]] for s in samples]
    assert results["results"]["wmt16-en-de"]["bleu,none"] == pytest.approx(
        sacrebleu.corpus_bleu(outputs, [refs]).score, abs=1e-6)
    samples = [s for s in results["samples"]["gsm8k_eu20_de"] if s["filter"] == "flexible-extract"]
    hits = []
    for s in samples:
        raw = s["resps"][0][0]
        numbers = re.findall(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", raw)
        last = next((a or b for a, b in reversed(numbers)), "[invalid]") if numbers else "[invalid]"
        clean = lambda t: re.sub(r"(?s).*#### |,|\$|\.$", "", t).lower()  # noqa: E731
        hits.append(int(clean(last) == clean(golds["gsm8k_eu20_de"][s["doc_id"]])))
    assert results["results"]["gsm8k_eu20_de"]["exact_match,flexible-extract"] == pytest.approx(sum(hits) / N)
    assert not math.isnan(results["results"]["gsm8k_eu20_de"]["exact_match,strict-match"])
