"""Settings of the model card (`occi card`)."""
from __future__ import annotations

from dataclasses import dataclass, field


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
        from occi import ranges

        ranges.check(self, {"price_per_gpu_hour": ranges.at_least(0)})
