"""Video data: decoding, prepared frame storage, dataset layouts, samplers, transforms, recipes."""
