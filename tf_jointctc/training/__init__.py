"""Training loop pieces around `model.fit`: strategies, the work dir, checkpoints and callbacks."""
