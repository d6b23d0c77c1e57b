"""Benchmark loaders: each yields `Question` items from the benchmark's own files.

The synthetic task (``zoom_agent.datasets.synthetic``) writes videos with OpenCV and is
imported on its own.
"""

from zoom_agent.datasets.charades import load_charades, load_durations
from zoom_agent.datasets.multiple_choice import PRESETS, FieldMap, load_multiple_choice
from zoom_agent.datasets.nextgqa import load_nextgqa, nextgqa_key
from zoom_agent.datasets.paths import DatasetFormatError, resolve_video
from zoom_agent.datasets.rextime import load_rextime

__all__ = [
    "PRESETS",
    "DatasetFormatError",
    "FieldMap",
    "load_charades",
    "load_durations",
    "load_multiple_choice",
    "load_nextgqa",
    "load_rextime",
    "nextgqa_key",
    "resolve_video",
]
