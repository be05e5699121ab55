"""EU20-HellaSwag documents -> query, choices and gold index (HellaSwag's own columns)."""
import re


def _clean(text: str) -> str:
    # HellaSwag's WikiHow contexts carry "[title]"-style markers and double spaces
    text = re.sub(r"\[.*?\]", "", text.strip().replace(" [title]", ". "))
    return text.replace("  ", " ")


def process_docs(dataset):
    def one(doc):
        context = f"{doc['ctx_a']} {doc['ctx_b'].capitalize()}".strip()
        return {"query": _clean(f"{doc['activity_label']}: {context}"),
                "choices": [_clean(ending) for ending in doc["endings"]],
                "label": int(doc["label"])}

    return dataset.map(one)
