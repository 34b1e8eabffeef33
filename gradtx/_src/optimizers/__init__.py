"""Full optimizers: short chains of gradtx transformations, one module per family."""
