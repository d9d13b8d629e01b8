"""What a trained network does, and what it does not do for free, measured.

  features            a named layer's activations
  attribution         attribution maps (gradients, SmoothGrad, Integrated Gradients, Grad-CAM,
                      occlusion); attribution_plots: their figures
  shift               shifted-input evaluation and consistency (Zhang 2019)
  corruptions         the 15 MNIST-C corruptions, seeded, generated on the fly
  attacks             FGSM and PGD under an L-infinity budget in pixel units of 255
  calibration         NLL, ECE, reliability diagrams, temperature scaling fitted on the validation split
  inference           a finished run's prediction function

Each robustness module is pure functions on uint8 NHWC images and a model's logits function, the
same forward pass as :mod:`cnnjax.train.evaluation`'s.  Nothing else in the library imports this
package."""
