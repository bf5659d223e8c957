"""Per-clip adaptation: fine-tune a copy of the model on the clip's own sharpest frames before deblurring it
(``vdeblur IN OUT --adapt``).

    survey.py     pass 1: every frame's sharpness, the sharpest frame of each stretch of the clip
    sharpness.py  the no-reference sharpness and noise measures, and blur lengths from them
    pairs.py      (blurred, sharp) pairs from those frames with the project's camera-shake synthesis
    finetune.py   the fine-tuning loop and the score on held-back pairs
    adapter.py    ``adapt_model``: all of it within a time budget, with the fallback to the base weights
"""

from .adapter import AdaptConfig, AdaptResult, adapt_model, default_budget
from .finetune import TuneSettings

__all__ = ["AdaptConfig", "AdaptResult", "TuneSettings", "adapt_model", "default_budget"]
