"""Calibration (Guo et al. 2017, "On Calibration of Modern Neural Networks"): does a classifier's
confidence match how often it is right?

Inputs are logits (N, K) float and integer labels (N,); probabilities are their softmax.

* :func:`nll`: mean negative log-likelihood of the true class (natural log).
* :func:`ece`: expected calibration error with ``bins`` equal-width confidence bins (default 15, as
  Guo et al.): the confidence of an example is its top softmax probability; bin m holds the
  confidences in ((m-1)/M, m/M] (the first bin includes 0); ECE = sum over bins of
  |bin| / N * |accuracy(bin) - mean confidence(bin)|, a number in [0, 1].  Empty bins count 0.
* :func:`reliability`: the per-bin numbers behind the diagram (edges, counts, accuracy, confidence);
  :func:`plot_reliability` draws them (accuracy bars against the diagonal, before / after scaling).
* :func:`fit_temperature`: the temperature T > 0 minimising the NLL of ``logits / T`` on the
  split it is given -- the validation split, never the test split (:func:`calibration_evaluation`
  enforces it): a 1-D bounded minimisation of NLL over log T in [log 0.05, log 20]
  (``scipy.optimize.minimize_scalar``, deterministic).  Dividing by T keeps every argmax, so the
  accuracy does not change.
"""
from __future__ import annotations

import numpy as np

from cnnjax import data as data_lib, plots
from cnnjax.train import evaluation

DEFAULT_BINS = 15
T_RANGE = (0.05, 20.0)


def _log_softmax(logits) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def softmax(logits) -> np.ndarray:
    return np.exp(_log_softmax(logits))


def nll(logits, labels) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits)``."""
    labels = np.asarray(labels)
    return float(-_log_softmax(logits)[np.arange(len(labels)), labels].mean()) if len(labels) else 0.0


def reliability(probs, labels, bins: int = DEFAULT_BINS) -> dict:
    """Per confidence bin (module docstring): ``edges`` (bins + 1,), ``count``, ``accuracy`` and
    ``confidence`` (mean top probability; 0 for an empty bin) as lists, and ``ece``."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
    conf, pred = probs.max(-1), probs.argmax(-1)
    correct = (pred == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)  # (m-1)/M < conf <= m/M
    count = np.bincount(which, minlength=bins)
    acc = np.bincount(which, correct, bins) / np.maximum(count, 1)
    mean_conf = np.bincount(which, conf, bins) / np.maximum(count, 1)
    ece_value = float(np.sum(count / max(len(labels), 1) * np.abs(acc - mean_conf)))
    return {"edges": edges.tolist(), "count": count.tolist(), "accuracy": acc.tolist(),
            "confidence": mean_conf.tolist(), "ece": ece_value}


def ece(probs, labels, bins: int = DEFAULT_BINS) -> float:
    """Expected calibration error of probabilities ``probs`` (N, K) (module docstring)."""
    return reliability(probs, labels, bins)["ece"]


def fit_temperature(logits, labels) -> float:
    """The temperature T in :data:`T_RANGE` minimising ``nll(logits / T, labels)`` (module docstring)."""
    from scipy import optimize
    logits = np.asarray(logits, np.float64)
    if not len(labels):
        raise ValueError("fit_temperature needs at least one example")
    res = optimize.minimize_scalar(lambda t: nll(logits / np.exp(t), labels), bounds=tuple(np.log(T_RANGE)),
                                   method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def summary(logits, labels, temperature: float = 1.0, bins: int = DEFAULT_BINS) -> dict:
    """``{"nll", "ece", "accuracy", "reliability"}`` of ``logits / temperature``."""
    z = np.asarray(logits, np.float64) / temperature
    probs = softmax(z)
    rel = reliability(probs, labels, bins)
    return {"nll": nll(z, labels), "ece": rel["ece"], "accuracy": float((probs.argmax(-1) == labels).mean()),
            "reliability": rel}


def calibration_evaluation(model, variables, dataset: data_lib.Dataset, *, bins: int = DEFAULT_BINS,
                           batch_size: int = 1000, compute_dtype: str = "float32", tta: str = "none", mean=None,
                           std=None) -> dict:
    """Calibration of a trained model on ``dataset``'s test split, before and after temperature
    scaling fitted on its validation split: ``{"temperature", "bins", "val_images", "before":
    summary, "after": summary}`` (:func:`summary` of the test logits at T = 1 and at the fitted T).
    The logits are the evaluation's (:func:`cnnjax.train.evaluation.make_logits_fn`; ``mean`` / ``std``
    default the dataset's).  ValueError when the dataset has no validation split: the temperature
    is never fitted on the test set."""
    if not dataset.has_validation:
        raise ValueError("temperature scaling needs a validation split, and this run has none "
                         "(it trained with validation_size=0); the temperature is never fitted on the test set")
    mean = dataset.mean if mean is None else mean
    std = dataset.std if std is None else std
    logits_fn = evaluation.make_logits_fn(model, mean, std, compute_dtype, tta)
    val = evaluation.predict_logits(logits_fn, variables, dataset.val_images, batch_size)
    test = evaluation.predict_logits(logits_fn, variables, dataset.test_images, batch_size)
    t = fit_temperature(val, dataset.val_labels)
    return {"temperature": t, "bins": bins, "val_images": int(len(dataset.val_labels)),
            "before": summary(test, dataset.test_labels, 1.0, bins), "after": summary(test, dataset.test_labels, t, bins)}


def plot_reliability(result: dict, path: str, title: str = "reliability diagram", *, dpi: int | None = None) -> str:
    """A reliability diagram of :func:`calibration_evaluation`'s ``result``: per confidence bin the
    accuracy (bars) against the diagonal of perfect calibration, before and after temperature
    scaling side by side, ECE in each title.  Writes a PNG (cnnjax.plots' style) and returns its path."""
    plt = plots.plt
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharey=True)
    for ax, which in zip(axes, ("before", "after")):
        rel = result[which]["reliability"]
        edges = np.asarray(rel["edges"])
        width, left = np.diff(edges), edges[:-1]
        count = np.asarray(rel["count"])
        acc = np.where(count > 0, rel["accuracy"], 0.0)
        ax.bar(left, acc, width=width, align="edge", edgecolor="black", linewidth=0.5, label="accuracy")
        conf = np.where(count > 0, rel["confidence"], 0.0)
        ax.bar(left, np.abs(conf - acc), bottom=np.minimum(acc, conf), width=width, align="edge", color="tab:red",
               alpha=0.3, label="gap to mean confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1)
        t = 1.0 if which == "before" else result["temperature"]
        ax.set_title(f"{which} temperature scaling (T={t:.2f})\nECE {rel['ece']:.4f}, NLL {result[which]['nll']:.4f}",
                     fontsize=9)
        ax.set_xlabel("confidence (top softmax probability)")
        ax.set_xlim(0, 1), ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return plots._save(fig, path, dpi or plots.DPI)
