"""Simulated moving samples with ground truth: phantoms, motion, noise, image formation."""
