"""Data layer: readers, features, splits, synthetic data. NumPy/pandas/SciPy only, never TensorFlow."""
