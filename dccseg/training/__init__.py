"""Training: coarse 3D network, refine 2D network, the run folder contract, and the whole pipeline."""
