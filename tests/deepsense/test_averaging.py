import keras
import numpy as np
import pytest

from deepsense.averaging import AveragedWeights


class _Recorder(keras.callbacks.Callback):
    """Records the first trainable variable after each step, when an epoch's first batch
    starts and when validation starts, and the optimizer's average of it then."""

    def __init__(self):
        super().__init__()
        self.at_validation, self.average_at_validation = [], []
        self.at_epoch_start, self.after_last_step = [], []
        self.last_step = None

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.at_epoch_start.append(self.model.trainable_variables[0].numpy().copy())

    def on_train_batch_end(self, batch, logs=None):
        self.last_step = self.model.trainable_variables[0].numpy().copy()

    def on_test_begin(self, logs=None):
        self.after_last_step.append(self.last_step)
        self.at_validation.append(self.model.trainable_variables[0].numpy().copy())
        self.average_at_validation.append(
            self.model.optimizer._model_variables_moving_average[0].numpy().copy())


def _model(use_ema: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.05, use_ema=use_ema, ema_momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    return model


def _data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(64, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)


def test_validation_judges_the_average_and_training_resumes_from_the_raw_weights(rng):
    x, y = _data(rng)
    model, recorder = _model(use_ema=True), _Recorder()
    model.fit(x, y, batch_size=16, epochs=3, validation_data=(x, y), verbose=0,
              callbacks=[AveragedWeights(), recorder])

    for seen, average, raw in zip(recorder.at_validation, recorder.average_at_validation,
                                  recorder.after_last_step):
        np.testing.assert_allclose(seen, average)
        assert np.abs(seen - raw).max() > 1e-4  # the average is not the last step
    # each later epoch trains on from where the previous epoch's last step left the weights
    for start, raw in zip(recorder.at_epoch_start[1:], recorder.after_last_step):
        np.testing.assert_allclose(start, raw)
    # the model fit returns holds the average
    np.testing.assert_allclose(model.trainable_variables[0].numpy(),
                               recorder.average_at_validation[-1])


def test_without_validation_the_epoch_end_sees_the_average(rng):
    x, y = _data(rng)
    seen = []
    probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        (model.trainable_variables[0].numpy().copy(),
         model.optimizer._model_variables_moving_average[0].numpy().copy())))
    model = _model(use_ema=True)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[AveragedWeights(), probe])
    for weights, average in seen:
        np.testing.assert_allclose(weights, average)


def test_an_optimizer_without_an_average_is_refused(rng):
    x, y = _data(rng)
    with pytest.raises(ValueError, match="use_ema=True"):
        _model(use_ema=False).fit(x, y, epochs=1, verbose=0, callbacks=[AveragedWeights()])
