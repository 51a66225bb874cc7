"""The edge runtime: what a device needs to run a bundle, with NumPy only (LiteRT optional).

Nothing here imports TensorFlow, Keras or paho-mqtt; it builds on the data layer
(`deepsense.data`, `deepsense.errors`) and is used by the MQTT gateway (`gateway`) and by
`deepsense.export` for its parity checks. Import the module you need:

- `bundle`: read and verify a bundle (manifest.json, weights.npz, model.tflite).
- `ops`: the DeepSense op set in NumPy; `runtime`: `load_bundle` -> `EdgeModel.predict`.
- `predictions`: what one prediction carries (label and probabilities, or mean/std).
- `offline`: `deepsense predict`, the runtime over a prepared dataset, scored.
- `scoring`, `metrics`, `calibration`, `stats`: metrics of outputs against labels (accuracy,
  F1, NLL, ECE, Brier, interval coverage), shared with `deepsense evaluate`.
"""
