"""Precise BatchNorm statistics: inference mode behaves as the batch statistics do."""

import keras
import numpy as np
import pytest

from deepsense.batchnorm import BatchNormProbe, recalibrate_batch_norm
from deepsense.config import load_config
from deepsense.data.features import FeatureConfig
from deepsense.data.prepared import prepare_recordings
from deepsense.data.splits import split_indices
from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings
from deepsense.model import build_deepsense
from deepsense.train import fit


def _with_batch_statistics(model: keras.Model):
    """`model` with every BatchNorm normalising by its batch and Dropout off."""
    inputs = keras.Input(model.inputs[0].shape[1:])

    def call(layer, *args, **kwargs):
        if isinstance(layer, keras.layers.Dropout):
            return args[0]
        if isinstance(layer, keras.layers.BatchNormalization):
            return layer(*args, training=True)
        return layer(*args, **kwargs)

    outputs = model._run_through_graph([inputs], operation_fn=lambda layer: layer, call_fn=call)
    return keras.Model(inputs, outputs)


def _accuracy(predict, x, y, batch_size=128) -> float:
    probs = np.concatenate([np.asarray(predict(x[i:i + batch_size]))
                            for i in range(0, len(x), batch_size)])
    return float((probs.argmax(axis=1) == y).mean())


def test_recalibrated_statistics_are_the_batch_moments_of_the_first_layer(tiny_model_config, rng):
    features = FeatureConfig()
    model = build_deepsense(features, 3, config=tiny_model_config)
    x = rng.normal(size=(300, features.n_intervals, features.n_features)).astype(np.float32)
    recalibrate_batch_norm(model, x)
    conv_out = keras.Model(model.inputs, model.get_layer("acc_conv1").output)(x).numpy()
    conv_out = conv_out.reshape(-1, conv_out.shape[-1])
    bn = model.get_layer("acc_conv1_bn")
    # two batches of 256 and 44 windows: the mean of the batch means
    first = conv_out[:256 * conv_out.shape[0] // 300]
    second = conv_out[256 * conv_out.shape[0] // 300:]
    np.testing.assert_allclose(bn.moving_mean.numpy(), (first.mean(0) + second.mean(0)) / 2,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), (first.var(0) + second.var(0)) / 2,
                               rtol=1e-3, atol=1e-5)


def test_probe_skips_dropout_and_shares_the_model_layers(tiny_model_config):
    model = build_deepsense(FeatureConfig(), 3, config=tiny_model_config)
    probe = BatchNormProbe(model)
    assert set(probe.probe.output.keys()) == {
        layer.name for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)}
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in probe.probe.layers)


@pytest.mark.slow
def test_few_hundred_windows_train_to_a_model_that_is_right_in_inference_mode(tmp_path):
    """The failure this guards against: momentum-0.99 moving statistics after a few hundred
    steps made a model predict one or two classes in inference mode (0.17-0.33)."""
    spec = SyntheticSpec(n_users=4, seconds_per_activity=30.0, seed=1)
    ds = prepare_recordings(make_recordings(spec), FeatureConfig(), activity_names=list(ACTIVITIES))
    assert 200 <= len(ds.x) <= 500
    config = load_config(None, ["model.conv_filters=16", "model.merge_filters=16",
                                "model.gru_units=[24, 24]", "train.epochs=8",
                                "train.split=loso:a"])
    model = fit(ds, config, tmp_path, verbose=0).model
    train_rows, test_rows = split_indices(ds, "loso:a")
    # batch statistics are those of the population only over shuffled batches (the rows are
    # sorted by user and activity)
    train_rows = np.random.default_rng(0).permutation(train_rows)
    y = ds.labels("activity")
    infer = lambda batch: model(batch, training=False)  # noqa: E731
    batch_stats = _with_batch_statistics(model)
    train_infer = _accuracy(infer, ds.x[train_rows], y[train_rows])
    train_batch = _accuracy(batch_stats, ds.x[train_rows], y[train_rows])
    test_infer = _accuracy(infer, ds.x[test_rows], y[test_rows])
    majority = np.bincount(y[test_rows]).max() / len(test_rows)
    assert abs(train_infer - train_batch) <= 0.02, (train_infer, train_batch)
    assert test_infer >= majority + 0.4, (test_infer, majority)
