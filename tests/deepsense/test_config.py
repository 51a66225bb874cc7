import pytest

from deepsense.config import ConfigError, RunConfig, config_to_toml, load_config


def test_defaults_follow_the_released_code_except_the_learning_rate():
    config = RunConfig()
    assert (config.train.beta_1, config.train.beta_2) == (0.5, 0.9)
    assert config.train.learning_rate == 1e-3  # released 1e-4: see TrainConfig
    assert config.train.batch_size == 64 and config.model.weight_decay == 5e-4
    assert config.model.gru_units == (120, 120) and config.model.conv_filters == 64
    assert (config.features.n_intervals, config.features.n_points) == (20, 10)


def test_file_then_overrides_and_toml_round_trip(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[train]\nepochs = 7\nsplit = "loso:b"\n[model]\ngru_units = [16, 8]\n')
    config = load_config(path, ["train.epochs=9", "features.interval_s=0.5"])
    assert config.train.epochs == 9 and config.train.split == "loso:b"
    assert config.model.gru_units == (16, 8) and config.features.interval_s == 0.5
    (tmp_path / "again.toml").write_text(config_to_toml(config))
    assert load_config(tmp_path / "again.toml") == config


@pytest.mark.parametrize("override, match", [
    ("train.epochs=three", "train.epochs expected an integer"),
    ("train.epoch=3", r"unknown key\(s\) \['train.epoch'\]"),
    ("optim.lr=1", "unknown section 'optim'"),
    ("model.gru_units=[0]", "gru_units expected a positive integer"),
    ("features.n_points=1", "n_points expected >= 2"),
    ("train.task=\"speed\"", "train.task expected one of"),
    ("noequals", "section.key=value"),
    ("train.rotate_degrees=200", r"rotate_degrees expected an angle in \[0, 180\]"),
    ("train.yaw_degrees=-5", r"yaw_degrees expected an angle in \[0, 180\]"),
    ("train.ema_momentum=1.0", r"ema_momentum expected a momentum in \[0, 1\)"),
])
def test_bad_settings_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_bad_file_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_learning_rate_plateau_patience_is_checked():
    assert load_config(None, ["train.lr_plateau_patience=0"]).train.lr_plateau_patience == 0
    with pytest.raises(ConfigError, match="lr_plateau_patience"):
        load_config(None, ["train.lr_plateau_patience=-1"])


def test_compress_section_is_typed_like_the_others(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[compress]\ntarget_params = 0.05\nstep_interval = 500\n")
    config = load_config(path, ["compress.distill_weight=0"])
    assert (config.compress.target_params, config.compress.step_interval,
            config.compress.distill_weight) == (0.05, 500, 0.0)
    assert "[compress]" in config_to_toml(config)
    with pytest.raises(ConfigError, match="compress.n_step"):
        load_config(None, ["compress.n_step=3"])
    with pytest.raises(ConfigError, match="compress.seed expected an integer"):
        load_config(None, ["compress.seed=1.5"])


@pytest.mark.parametrize("overrides, degrees", [
    ([], 20.0),
    (['train.task="regression"'], 20.0),
    (['train.task="user"'], 0.0),              # UserID: how a person holds the phone is a cue
    (['train.task="user"', "train.rotate_degrees=5"], 5.0),
    (["train.rotate_degrees=0"], 0.0),
])
def test_rotation_defaults_by_task_unless_set(overrides, degrees):
    assert load_config(None, overrides).train.rotation_degrees == degrees


@pytest.mark.parametrize("overrides, degrees", [
    ([], 180.0),
    (['train.task="regression"'], 0.0),
    (['train.task="user"'], 0.0),
    (["train.yaw_degrees=30"], 30.0),
])
def test_yaw_defaults_by_task_unless_set(overrides, degrees):
    assert load_config(None, overrides).train.yaw_rotation_degrees == degrees
