"""DeepIoT: compressor-critic structured pruning that yields a thinner dense DeepSense.

Modules (only `structure`, `schedule` and `report` are importable without TensorFlow):

- `structure`: which hidden units of a DeepSense model can be pruned, which share a mask,
  and how each weighted layer connects to them (the registry the other modules read).
- `masks`: keep probabilities -> per-unit scales, kept widths.
- `cost`: parameters, float32 bytes and FLOPs of a model with given widths (no Keras).
- `masked`: the critic: the pretrained model run with per-sample unit masks as inputs.
- `compressor`: the LSTM that reads each layer's weights and emits keep probabilities.
- `schedule`: the pruning-threshold schedule (get_config / from_config).
- `compress`: the alternating REINFORCE / critic training loop and the fine-tuning.
- `thin`: the physically smaller DeepSense with the pruned units removed.
- `baselines`: magnitude pruning with retraining (DyNS-style) and L1-norm filter pruning.
- `run`: `deepsense compress`: a run directory in, a compressed run directory out.
- `report`: the compression report (JSON, table, trade-off plot).
"""
