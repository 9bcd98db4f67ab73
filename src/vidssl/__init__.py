"""vidssl: self-supervised and language-supervised video representation learning."""

__version__ = "0.1.0"
