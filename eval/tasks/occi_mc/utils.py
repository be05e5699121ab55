"""The data files of this folder's tasks, relative to the folder: lm-eval would resolve them against
the working directory, so the tasks work from wherever the repository, package or run lies."""
from pathlib import Path

import datasets


def load(data_files: dict, **_):
    here = Path(__file__).resolve().parent
    return datasets.load_dataset("json", data_files={split: str(here / path) for split, path in data_files.items()})
