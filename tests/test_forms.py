from digitlab.config import preset
from digitlab.dashboard.forms import config_from_form, form_values, model_size, parse_int_list
from digitlab.models import count_parameters, create_model


def test_form_round_trip_for_every_preset():
    for name in ("fast", "seed-cnn", "seed-resnet", "best-mlp", "seed-lenet3"):
        config = preset(name)
        again, errors = config_from_form(form_values(config))
        assert errors == {}, name
        assert again.model == config.model
        assert {k: again.model_options[k] for k in config.model_options} == config.model_options


def test_lists_are_typed_as_text():
    values = form_values(preset("seed-mlp"))
    assert values["opt.hidden"] == "512, 512, 512"
    assert parse_int_list("hidden", "256; 128") == ([256, 128], None)
    assert parse_int_list("hidden", "")[1] == "hidden needs at least one number, e.g. 64"
    assert "whole numbers separated by commas" in parse_int_list("hidden", "wide")[1]


def test_bad_form_values_get_a_message_per_field():
    values = form_values(preset("fast"))
    values.update({"batch_size": 0, "lr": -1.0, "opt.channels": "16, x", "opt.hidden": 0})
    _, errors = config_from_form(values)
    assert errors["batch_size"] == "batch_size must be between 1 and 60000, got 0"
    assert "lr must be above 0" in errors["lr"]
    assert "whole numbers" in errors["model_options.channels"]
    assert errors["model_options.hidden"] == "hidden must be an integer between 1 and 8192, got 0"
    assert set(errors) == {"batch_size", "lr", "model_options.channels", "model_options.hidden"}


def test_options_of_another_architecture_are_ignored():
    values = form_values(preset("fast"))
    values["model"] = "mlp"
    config, errors = config_from_form(values)
    assert "channels" not in config.model_options and errors == {}


def test_the_form_states_the_model_size_without_building_it():
    fast = preset("fast")
    count = count_parameters(create_model(fast.model, **fast.model_options))
    assert model_size(fast, {}) == f"{count:,} parameters, {count * 4 / 1e6:.1f} MB of weights"
    assert model_size(fast.replace(model_options={"channels": [2048]}), {"model_options.channels": "too wide"}) is None
