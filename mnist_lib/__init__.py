"""mnist_lib: the helper library behind the MNIST research notebooks and pipeline."""

__version__ = "0.1.0"
