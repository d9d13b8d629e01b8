"""Data augmentation on the device: pure, seeded, jit-able functions on uint8 NHWC batches.

==================  ===========================================  ==============================
module              ops                                          whose code
==================  ===========================================  ==============================
``flip_crop``       random horizontal flip, padded random crop   ours (``config.augment``)
``geometric``       one affine warp: rotation, translation,      resampling: dm-pix
                    scale, shear; bilinear or nearest; fill      (``affine_transform``);
                                                                 matrices and draws: ours
``colour``          brightness, contrast, color, sharpness,      ours (PIL's definitions;
                    posterize, solarize, autocontrast, equalize  dm-pix's differ)
``policies``        RandAugment(N, M), TrivialAugmentWide        ours
``erasing``         random erasing / Cutout                      ours
``mixing``          MixUp, CutMix, mixed label targets           ours
``pipeline``        :class:`Augmentation`: the families in       ours
                    order, each with its own sub-key
==================  ===========================================  ==============================

Every op: uint8 (B, H, W, C) images (any C) and per-image parameters in, uint8 of the same shape
out (MixUp: float32), randomness only from the ``key`` argument, so the same key gives the same
batch.  This package imports no other part of cnnjax: the training step
(:func:`cnnjax.train.step.prepare_batch`) builds the :class:`Augmentation` and hands it the step's key.
Settings, figures and the study: docs/augmentation.md.
"""
from cnnjax.augment.pipeline import Augmentation, FAMILY, POLICIES  # noqa: F401
