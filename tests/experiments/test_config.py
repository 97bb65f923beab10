from pathlib import Path

import pytest

from experiments.config import CONFIG_DIR, ConfigError, load_config, parse_config


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    config = load_config(path)

    assert config.experiment.name == path.stem


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"experiment": {"name": "x", "seed": 1}},
            r"unknown key 'seed' in \[experiment\]; allowed keys: name, seeds, test_fraction",
        ),
        (
            {"experiment": {"name": "x"}, "data": {"source": "synthetic", "citizens": -5}},
            r"data.citizens: Input should be greater than 0 \(got -5\)",
        ),
        (
            {"experiment": {"name": "x"}, "scorecard": {"tiers": {"visa": 1000}}},
            r"scorecard.tiers: tier 'visa' threshold must be within \[350, 950\] \(got 1000",
        ),
        (
            {"experiment": {"name": "x"}, "model": {"kind": "forest"}},
            r"model.kind: Input should be 'logistic' or 'mlp' \(got 'forest'\)",
        ),
        (
            {"experiment": {"name": "x"}, "data": {"source": "csv"}},
            r"data: .*expected tags: 'synthetic', 'lending_club', 'german_credit', 'file'",
        ),
        (
            {"experiment": {"name": "x"}, "data": {"source": "synthetic", "citizenz": 5}},
            r"unknown key 'citizenz' in \[data\]; allowed keys: citizens, policy, source",
        ),
        (
            {
                "experiment": {"name": "x"},
                "data": {"source": "synthetic", "policy": {"target": "politics"}},
            },
            r"data.policy.target: must be one of ethnic_minority, .*political_expression, "
            r"scrutinized_profession, teacher, .* \(got 'politics'\)",
        ),
        (
            {
                "experiment": {"name": "x"},
                "data": {"source": "synthetic", "policy": {"strength": 11}},
            },
            r"data.policy.strength: Input should be less than or equal to 10 \(got 11\)",
        ),
        (
            {"experiment": {"name": "x"}, "inference": {"rows": 10}},
            r"inference.rows: Input should be greater than or equal to 100 \(got 10\)",
        ),
        (
            {"experiment": {"name": "x", "test_fraction": 1.5}},
            r"experiment.test_fraction: Input should be less than 1",
        ),
        (
            {"experiment": {"name": "x", "seeds": [1, 1]}},
            r"experiment.seeds: seeds must be distinct",
        ),
        (
            {
                "experiment": {"name": "x"},
                "data": {"source": "file", "path": "a.csv", "label": "y"},
            },
            r"data: give exactly one of data.partition or data.dirichlet_alpha",
        ),
        ({"experimentt": {"name": "x"}}, r"unknown key 'experimentt' in the top level"),
        (
            {"experiment": {"name": "x"}, "training": {"epoch": 3}},
            r"unknown key 'epoch' in \[training\]; allowed keys: batch_size, epochs, learning_",
        ),
        (
            {"experiment": {"name": "x"}, "federation": {"adam_beta": 0.9}},
            r"unknown key 'adam_beta' in \[federation\]; allowed keys: adam_beta1, adam_beta2, ",
        ),
        (
            {"experiment": {"name": "x"}, "federation": {"scale_bits": 30}},
            r"federation.scale_bits: Input should be less than or equal to 24 \(got 30\)",
        ),
    ],
)
def test_bad_configs_name_the_key_and_the_allowed_values(raw: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config(raw)


def test_a_missing_or_broken_file_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[experiment\nname = 'x'")

    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_a_relative_data_path_is_read_from_the_config_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    config = folder / "mine.toml"
    config.write_text(
        '[experiment]\nname = "mine"\n[data]\nsource = "file"\npath = "tables/loans.csv"\n'
        'label = "y"\npartition = "region"\n'
    )

    loaded = load_config(config)

    assert loaded.data.source == "file"
    assert loaded.data.path == folder / "tables" / "loans.csv"


def test_file_data_keys_are_checked_with_the_key_named() -> None:
    raw = {
        "experiment": {"name": "x"},
        "data": {
            "source": "file",
            "path": "a.csv",
            "label": "y",
            "partition": "region",
            "impute": "mean",
            "encoding": "klingon",
        },
    }

    with pytest.raises(ConfigError) as caught:
        parse_config(raw)

    message = str(caught.value)
    assert "data.impute: Input should be 'median', 'mode' or 'drop-rows' (got 'mean')" in message
    assert "data.encoding: unknown text encoding 'klingon'" in message
