"""RDeepSense: calibrated uncertainty for DeepSense models in one forward pass.

Import the module you need; this package imports nothing itself, so the NumPy-only module
`temperature` never pulls in TensorFlow. The calibration metrics (NLL, ECE, Brier, interval
coverage) and what one prediction carries live in the edge runtime (`edge.calibration`,
`edge.predictions`), which needs NumPy only.

- `heads`: uncertainty heads on a DeepSense body (`add_uncertainty_head`) and their layers.
- `losses`: the tunable proper scoring rule (weighted NLL + Brier, or NLL + MSE).
- `train`: `fit_rdeepsense`, training with ``train.head = "rdeepsense"``.
- `moments`: sampling-free moment propagation through the last dropout layers (ApDeepSense).
- `predictors`: inference modes: one pass, MC dropout, deep ensembles, temperature scaling.
- `temperature`: temperature scaling (NumPy).
- `calibrate`: a temperature fitted on validation users, folded into the logits layer.
"""
