"""What a trained network does, and what it does not: a named layer's activations (features),
attribution maps (attribution, attribution_plots), shifted-input evaluation (shift), and a finished
run's prediction function (inference).  Nothing else in the library imports this package."""
