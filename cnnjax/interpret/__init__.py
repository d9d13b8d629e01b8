"""What a trained classifier does not do for free, measured: its accuracy on corrupted test images
(``corruptions``: the 15 MNIST-C corruptions, seeded and generated on the fly), against
adversarial perturbations (``attacks``: FGSM and PGD under an L-infinity budget in pixel units),
and how well its confidence matches its accuracy (``calibration``: NLL, ECE, reliability diagrams,
temperature scaling fitted on the validation split).  Each module is pure functions on uint8 NHWC
images and a model's logits function, the same forward pass as :mod:`cnnjax.train.evaluation`'s."""
