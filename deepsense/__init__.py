"""DeepSense: CNN + GRU models over IMU streams (data layer, model, training, CLI).

Importing this package is cheap: TensorFlow is imported only by the modules that need it
(`deepsense.layers`, `deepsense.model`, `deepsense.train`, `deepsense.evaluate`).
"""

from deepsense.errors import ConfigError, DataFormatError, MissingExtraError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataFormatError", "MissingExtraError", "__version__"]
