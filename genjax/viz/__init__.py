"""Pictures: image grids, latent-space plots, filters and feature maps."""
