"""RDeepSense: calibrated uncertainty for DeepSense models in one forward pass.

Import the module you need; this package imports nothing itself, so the NumPy-only modules
(`predictions`, `calibration`, `temperature`, `stats`) never pull in TensorFlow.

- `heads`: uncertainty heads on a DeepSense body (`add_uncertainty_head`) and their layers.
- `losses`: the tunable proper scoring rule (weighted NLL + Brier, or NLL + MSE).
- `train`: `fit_rdeepsense`, training with ``train.head = "rdeepsense"``.
- `moments`: sampling-free moment propagation through the last dropout layers (ApDeepSense).
- `predictors`: inference modes: one pass, MC dropout, deep ensembles, temperature scaling.
- `temperature`: temperature scaling (NumPy).
- `calibration`: NLL, ECE, Brier, interval coverage, reliability bins (NumPy).
- `predictions`: what one prediction carries, for the gateway (NumPy).
- `plots`: the reliability diagram PNG (matplotlib).
"""
