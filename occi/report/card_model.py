"""What several model card sections share: the line a section shows for missing files, and the run's model shape."""
from __future__ import annotations

from occi.basemodel import run_model_config
from occi.errors import OcciError
from occi.rundir import RunDir

MISSING = "_Not available: {what} is missing from this run ({path})._"
"""A section's text when the files it reads are missing (it never invents numbers)."""


def model_of(cfg, run: RunDir):
    """The run's model shape (an imported base's from base/config.json), or None."""
    try:
        return run_model_config(cfg, run) if cfg.model is not None else None
    except OcciError:
        return None
