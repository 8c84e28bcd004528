"""Runtime of the siren detector: audio in, siren events out. Never imports TensorFlow."""

__version__ = "0.1.0"
