"""Search settings: presets, validation messages naming the setting and its range, TOML files and flags."""

import dataclasses
import math

import pytest

from autoloss.search_config import (
    PRESETS,
    SETTINGS,
    SearchConfig,
    SearchConfigError,
    describe_settings,
    load_config,
    parse_flag_value,
)


def test_the_default_config_is_the_demo_preset_and_every_preset_is_valid():
    assert SearchConfig() == SearchConfig.preset("demo") == load_config()
    for name in PRESETS:
        config = SearchConfig.preset(name)
        assert config.to_dict()["generations"] == config.generations
    paper = SearchConfig.preset("paper")
    assert paper.detector_preset == "resnet50" and paper.optimizer == "sgd" and paper.data.startswith("coco,holdout=0:")
    # the proxy trains on what split-coco leaves and is scored on what it held out, from a pretrained backbone
    assert "search/search_train.json" in paper.data and "search/search_val.json" in paper.search_val_data
    assert paper.backbone_weights.endswith("resnet50-0676ba61.pth")


def test_unknown_preset_lists_the_presets():
    with pytest.raises(SearchConfigError, match="unknown preset 'huge'; choose one of demo, small, paper"):
        SearchConfig.preset("huge")
    with pytest.raises(SearchConfigError, match="unknown preset"):
        load_config(preset="huge")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"generations": 0}, r"'generations' must be an integer in \[1, 100000\], got 0"),
        ({"crossover_rate": 1.5}, r"'crossover_rate' must be a number in \[0, 1\], got 1.5"),
        ({"learning_rate": 0.0}, r"'learning_rate' must be a number in \(0, 10\]"),
        ({"population": 2.5}, r"'population' must be an integer"),
        ({"workers": True}, r"'workers' must be an integer"),
        ({"method": "bayes"}, r"'method' must be one of cse, cpv-only, vanilla, random"),
        ({"branch": "box"}, r"'branch' must be one of cls, reg, both"),
        ({"zoo_seeds": ("nope",)}, r"'zoo_seeds' must be a list of zoo names"),
        ({"zoo_seeds": ("giou",)}, r"'giou' is a reg-form loss; this search takes sigmoid-form seeds"),
        ({"top_k": 10, "population": 5}, r"'top_k' \(K = 10\) cannot exceed 'population' \(M = 5\)"),
        ({"init_depth": 6, "max_depth": 4}, r"'init_depth' \(6\) cannot exceed 'max_depth' \(4\)"),
        ({"detector_preset": "resnet18", "detector": "faster-rcnn"}, r"'detector_preset' must be one of"),
        ({"data": "imagenet"}, r"'data': dataset spec 'imagenet': unknown dataset kind .*accepted forms: 'shapes'"),
        ({"data": "coco,holdout=2.5:a.json:b"}, r"'data': .*holdout='2.5' must be a fraction"),
        ({"search_val_data": "shapes:colour=3"}, r"setting 'search_val_data': .*colour"),
        ({"image_size": 800, "image_max_size": 600}, r"'image_max_size' \(600\) cannot be below 'image_size'"),
        ({"data": ""}, r"'data' must be a string"),
        ({"mos": ["steps"]}, r"'mos' must be a table"),
        ({"complexity_penalty": -0.01}, r"'complexity_penalty' must be a number in \[0, 1\], got -0.01"),
        ({"complexity_penalty": math.inf}, r"'complexity_penalty' must be a number in \[0, 1\], got inf"),
        ({"complexity_penalty": math.nan}, r"'complexity_penalty' must be a number in \[0, 1\], got nan"),
        ({"complexity_measure": "depth"}, r"'complexity_measure' must be one of size, weighted"),
    ],
)
def test_values_out_of_range_name_the_setting_and_what_is_allowed(changes, message):
    with pytest.raises(SearchConfigError, match=message):
        SearchConfig(**changes)


def test_baselines_may_train_more_than_the_population_and_both_branches_take_seeds_of_both_forms():
    assert SearchConfig(method="vanilla", top_k=10, population=5).top_k == 10
    config = SearchConfig(branch="both", zoo_seeds=("focal", "giou"))
    assert config.branches == ("cls", "reg") and config.form_of("reg") == "reg" and config.form_of("cls") == "sigmoid"
    assert SearchConfig(detector="faster-rcnn").form_of("cls") == "softmax"


def test_unknown_settings_are_refused_with_a_suggestion():
    with pytest.raises(SearchConfigError, match=r"unknown setting 'generation' \(did you mean 'generations'\?\)"):
        SearchConfig.from_dict({"generation": 3})


def test_round_trip_and_differences_ignore_execution_settings():
    config = SearchConfig(generations=4, zoo_seeds=("focal",), mos={"steps": 5})
    assert SearchConfig.from_dict(config.to_dict()) == config
    other = config.replace(workers=8, dask_scheduler="tcp://host:8786", seed=3, proxy_steps=10)
    assert config.differences(other) == {"seed": (0, 3), "proxy_steps": (300, 10)}


def test_toml_file_with_preset_and_mos_table_then_flags_override(tmp_path):
    path = tmp_path / "search.toml"
    path.write_text('preset = "small"\ngenerations = 2\nzoo_seeds = ["focal"]\ncomplexity_penalty = 0.001\n'
                    '[mos]\nsteps = 7\n')
    config = load_config(path=path, overrides={"seed": 5})
    assert config.generations == 2 and config.seed == 5 and config.zoo_seeds == ("focal",)
    assert config.complexity_penalty == 0.001 and SearchConfig().complexity_penalty == 0.0
    assert config.population == PRESETS["small"]["population"] and dict(config.mos) == {"steps": 7}
    assert load_config(preset="demo", path=path).population == SearchConfig().population  # --preset beats the file
    assert load_config(path=path, overrides={"generations": 9}).generations == 9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("generatons = 2\n", r"search.toml: unknown setting 'generatons'"),
        ("generations = -1\n", r"search.toml: setting 'generations' must be an integer in \[1, 100000\], got -1"),
        ("generations = \n", r"search.toml: not valid TOML"),
        ("complexity_penalty = -inf\n", r"search.toml: setting 'complexity_penalty' must be a number in \[0, 1\]"),
        ("preset = 3\n", r"'preset' must be a preset name"),
        ('preset = "tiny"\n', r"unknown preset 'tiny'"),
    ],
)
def test_bad_toml_files_name_the_file_and_the_setting(tmp_path, text, message):
    path = tmp_path / "search.toml"
    path.write_text(text)
    with pytest.raises(SearchConfigError, match=message):
        load_config(path=path)


def test_a_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(SearchConfigError, match="cannot read config file .*missing.toml"):
        load_config(path=tmp_path / "missing.toml")


def test_flag_values_are_typed_by_their_setting():
    assert parse_flag_value("generations", "5") == 5
    assert parse_flag_value("crossover_rate", "0.25") == 0.25
    assert parse_flag_value("zoo_seeds", "focal, bce") == ("focal", "bce")
    assert parse_flag_value("dask_scheduler", "none") is None
    assert parse_flag_value("complexity_penalty", "0.002") == 0.002
    with pytest.raises(SearchConfigError, match=r"--top-k: must be an integer in \[1, 100000\], got 'three'"):
        parse_flag_value("top_k", "three")
    with pytest.raises(SearchConfigError, match="command line: unknown setting 'max_trees'"):
        load_config(overrides={"max_trees": 1})


def test_every_setting_is_described_with_its_allowed_values():
    text = describe_settings()
    for field in dataclasses.fields(SearchConfig):
        assert field.name in SETTINGS and f"{field.name} = " in text
    assert "generations = 3: number of generations; an integer in [1, 100000]" in text
