"""Models: video backbones (`vidssl.models.backbones`) and projection / predictor heads."""
