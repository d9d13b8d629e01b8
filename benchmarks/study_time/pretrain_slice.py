"""Issue 39's measurement: stage 1 of the transfer study for padded_cnn, seeds 0 and 1 (untimed)."""
try:
    from cnnjax.train import config
except ImportError:
    from cnnjax import config
MODELS = ["padded_cnn"]
def get_config():
    return config.config_dict(dataset="fashion_mnist", classes=(0, 1, 2, 3, 4), epochs=10, batch_size=128,
                              learning_rate=1e-3, optimizer="adam", validation_size=0.1)
def get_sweep():
    return config.product(config.sweep("seed", [0, 1]), config.sweep("model", MODELS))
