"""What the model families share: flattening and the option checks every model
runs on its own fields when it is constructed (``__post_init__``)."""
from __future__ import annotations

import flax.linen as nn
import numpy as np

from cnnjax import blocks, ops


class OptionError(ValueError):
    """An invalid model option; :func:`cnnjax.models.create` prefixes the model's name."""


def flatten(x):
    """(N, ...) -> (N, prod(...))."""
    return x.reshape(x.shape[0], -1)


def default(model: nn.Module, field: str):
    """The class default of ``model``'s dataclass ``field``."""
    return type(model).__dataclass_fields__[field].default


# --------------------------------------------------------------------------- option checks
# Each raises OptionError "<option> must be <what>, got <value>" (or says why it does not apply).

def require(ok: bool, option: str, want: str, value) -> None:
    if not ok:
        raise OptionError(f"{option} must be {want}, got {value!r}")


def pos_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


def pos_ints(v, n: int | None = None) -> bool:
    """A list / tuple of positive ints (exactly ``n`` of them when n is given)."""
    return isinstance(v, (list, tuple)) and all(pos_int(i) for i in v) and (n is None or len(v) == n)


def check_widths(widths, n: int | None = None) -> None:
    """``n`` (None: one or more) positive integers."""
    require(pos_ints(widths, n) and bool(widths), "widths", f"{n or 'one or more'} positive integers", widths)


def check_activation(activation) -> None:
    require(activation in (*blocks.ACTIVATIONS, None, "none"), "activation",
            f"one of {sorted(blocks.ACTIVATIONS)} or 'none'", activation)


def check_pool(pool) -> None:
    try:
        blocks.parse_pool(pool)
    except ValueError:
        require(False, "pool", f"one of {sorted(blocks.POOLS)} (anti-aliased: 'blurmax' / 'blur', with a blur "
                f"filter size as 'blurmax-5')", pool)


#: the heads of the course's conv nets: 'flatten' (a dense layer on the flattened feature map) or 'gap'
#: (global average pooling over H x W first: the dense layer sees one value per channel)
HEADS = ("flatten", "gap")


def check_head(head) -> None:
    require(head in HEADS, "head", f"one of {HEADS}", head)


def head_features(x, head: str):
    """(N, H, W, C) -> the head's input: flattened (N, H*W*C) or globally averaged (N, C)."""
    return flatten(x) if head == "flatten" else x.mean(axis=(1, 2))


def blur_size(pool) -> int:
    """The blur filter size of an anti-aliased pool kind (0 for 'max' / 'avg'): the size a model's
    strided convs use with it (:class:`cnnjax.blocks.BlurConv`)."""
    return blocks.parse_pool(pool)[1] or 0


def check_batch_norm(momentum, scale) -> None:
    require(isinstance(momentum, (int, float)) and not isinstance(momentum, bool) and 0 <= momentum < 1,
            "bn_momentum", "a number in [0, 1) (Flax's: the running statistics' weight on their old value)",
            momentum)
    require(isinstance(scale, (bool, np.bool_)), "bn_scale", "true or false", scale)


def check_conv_kind(model: nn.Module, option: str, widths) -> None:
    """The conv-kind option ``option`` of ``model`` (one of blocks.CONV_KINDS) and the options
    that belong to one kind: ``groups`` ('grouped'; it must divide every width) and, where the
    model has it, ``dilation`` ('dilated').  A non-default value for another kind is refused:
    it would be ignored."""
    kind = getattr(model, option)
    require(kind in blocks.CONV_KINDS, option, f"one of {blocks.CONV_KINDS}", kind)
    for field, owner in (("groups", "grouped"), ("dilation", "dilated")):
        if field not in type(model).__dataclass_fields__:
            continue
        value = getattr(model, field)
        require(pos_int(value), field, "a positive integer", value)
        if kind != owner and value != default(model, field):
            raise OptionError(f"{field} applies only to {option}={owner!r}, but {option}={kind!r} "
                              f"({field}={value!r} would be ignored)")
    widths = tuple(int(w) for w in widths)
    if kind == "grouped" and any(w % model.groups for w in widths):
        which = "both widths" if len(widths) == 2 else "every width"
        raise OptionError(f"groups={model.groups} must divide {which} {widths}")


def check_padding(padding, kernel_size) -> None:
    try:
        ops.resolve_padding_2d(padding, kernel_size)
    except (TypeError, ValueError) as e:
        raise OptionError(f"padding: {e}") from None

