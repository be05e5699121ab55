"""Settings of the model card (`occi card`)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from occi import ranges


@dataclass
class CardConfig:
    model_name: str = ""
    """Name of the model on the card and in its model-index (default: occi-<run name>)."""
    license: str = "apache-2.0"
    """License of the weights (a Hugging Face license id)."""
    datasets: list[str] = field(default_factory=list)
    """Hub ids of the training datasets, for the card's metadata (default: the run's hub sources)."""
    intended_use: str = ("Research on multilingual language modelling for the languages of the European Union: "
                         "a base model for continued pretraining, fine-tuning and evaluation studies.")
    """The card's intended-use paragraph."""
    limitations: str = ("A base model without instruction tuning or safety alignment. It reproduces the biases and "
                        "errors of its training text, and its quality differs between languages with their share of "
                        "the data. Do not use it for decisions about people.")
    """The card's limitations paragraph."""
    hardware: str = ""
    """What the model was trained on, e.g. "4 nodes of JUWELS Booster" (default: what training recorded)."""
    price_per_gpu_hour: float | None = None
    """What one GPU-hour costs, for the cost in `occi plan`, the card and the report (None: no cost shown)."""
    currency: str = "EUR"
    """The currency of price_per_gpu_hour."""

    def __post_init__(self) -> None:
        ranges.check(self, {"price_per_gpu_hour": ranges.at_least(0)})


SOURCE_CATEGORIES = ("public", "licensed", "private", "crawled", "user", "synthetic", "other")
"""The template's kinds of data source (its section 2): publicly available datasets, commercially
licensed and other private datasets, data crawled by the provider, user data, synthetic data, other."""


@dataclass
class ProviderConfig:
    """What only the provider knows for the EU AI Act's public summary of training content
    (`occi card` writes it); an empty field the summary needs becomes a to-do line there."""

    name: str = ""
    """The provider: the person or organisation placing the model on the EU market."""
    contact: str = ""
    """How to reach the provider about the summary (e-mail, postal address or web form)."""
    authorised_representative: str = ""
    """Providers established outside the EU: their authorised representative in the EU (optional)."""
    placed_on_market: str | datetime.date = ""
    """Date the model is (or was) placed on the EU market, YYYY-MM-DD."""
    data_collected_until: str | datetime.date = ""
    """Latest date the local sources' data was collected, YYYY-MM-DD (hub sources: read from
    `occi fetch`'s manifest)."""
    base_model_summary: str = ""
    """Continued pretraining: where the base model's own training-content summary is (a URL)."""
    source_categories: dict[str, str] = field(default_factory=dict)
    """Per source name (corpora, SFT and DPO sources): public, licensed, private, crawled, user,
    synthetic or other. Default: hub sources public; local sources must be declared."""
    crawler: str = ""
    """Sources declared `crawled`: the crawler's name and how it behaved (robots.txt, opt-outs)."""
    sme: bool = False
    """The provider is an SME: the summary lists the top 5% of domains (at most 1,000), not 10%."""

    def __post_init__(self) -> None:
        for key in ("placed_on_market", "data_collected_until"):
            value = getattr(self, key)
            try:
                if value:  # YAML reads an unquoted 2026-03-01 as a date: kept as its ISO text
                    setattr(self, key, datetime.date.fromisoformat(str(value)).isoformat())
            except ValueError:
                raise ValueError(f"{key}: {value!r} is not a date; write it as YYYY-MM-DD") from None
        for source, category in self.source_categories.items():
            if category not in SOURCE_CATEGORIES:
                raise ValueError(f"source_categories.{source}: {category!r} is not one of {', '.join(SOURCE_CATEGORIES)}")
