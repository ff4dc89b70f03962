"""Model families: configuration, training, measurement and headline experiments, one module each."""
