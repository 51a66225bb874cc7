"""The MQTT gateway: live sensor streams in, predictions with uncertainty out.

Nothing in this package imports TensorFlow: it needs NumPy, paho-mqtt, the edge runtime
(`edge`) and the shared feature code (`deepsense.data.features`).
"""
