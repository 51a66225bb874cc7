"""The edge side: bundle runtime (NumPy, optional LiteRT) and the MQTT gateway.

Nothing in this package imports TensorFlow: it needs NumPy, paho-mqtt and the shared
feature code (`deepsense.data.features`).
"""
