"""--model and --model_options, defined once for every command that builds a registered model
(experiments.train, experiments.summary): same names, same key=value syntax."""
from __future__ import annotations

from absl import flags

from cnnjax import train
from experiments import common

MODEL = flags.DEFINE_string("model", train.TrainConfig().model,
                            "Registered model name (python -m experiments.summary --list).")
MODEL_OPTIONS = flags.DEFINE_list("model_options", [], "Model options key=value, e.g. activation=sigmoid,pool=avg.")


def parse_options(items: list[str]) -> dict:
    """['activation=sigmoid', 'widths=8:16', 'groups=2'] -> {'activation': 'sigmoid', 'widths': [8, 16], 'groups': 2}."""
    def value(text: str):
        if ":" in text:
            return [value(t) for t in text.split(":")]
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        return {"true": True, "false": False, "none": None}.get(text.lower(), text)

    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise common.UsageError(f"--model_options entries must be key=value, got {item!r}")
        options[key.strip()] = value(text.strip())
    return options
