from pathlib import Path

import pytest
import yaml

from anchorudf.config import ConfigError, Params, field_docs, load_params, parse_override

ROOT = Path(__file__).resolve().parents[1]


def test_params_yaml_matches_defaults():
    # params.yaml is the documented default: the dataclass defaults must say the same,
    # so the README reference generated from the code cannot drift from the file.
    assert load_params(ROOT / "params.yaml") == Params()


def test_override_like_dvc():
    p = load_params(ROOT / "params.yaml", ["train.lambda_gda=0.02", "model.position_feature=depth",
                                           "render.test_yaws=[0, 90]"])
    assert p.train.lambda_gda == 0.02
    assert load_params(ROOT / "params.yaml", ["train.lr=5e-5"]).train.lr == 5e-5  # YAML 1.1 quirk
    assert p.model.position_feature == "depth"
    assert p.render.test_yaws == [0.0, 90.0]


@pytest.mark.parametrize("override, key", [
    ("train.lrr=0.1", "train.lrr"),           # unknown key
    ("trian.lr=0.1", "trian.lr"),             # unknown section
    ("train.lr=fast", "train.lr"),            # wrong type
    ("train.steps=1.5", "train.steps"),       # float for int
    ("train.flip=1", "train.flip"),           # int for bool
    ("train.lr=-1", "train.lr"),              # out of range
    ("render.size=8", "render.size"),         # below minimum
    ("model.position_feature=nerf", "model.position_feature"),  # not a choice
    ("sample.ratios=[0.5, 0.6, 0.1]", "sample.ratios"),  # cross-field rule
    ("render.shards=[0, 2]", "render.shards"),
    ("train.sigma_mix=[1, 1]", "train.sigma_mix"),
    ("garments.categories=[tshirt, gown]", "garments.categories"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_params(ROOT / "params.yaml", [override])
    assert str(info.value).startswith(key)


def test_opt_in_generator_categories():
    """dress, vest, cape and hoodie are generator categories outside the default six: accepted
    for the default source, listed in the error for an unknown one."""
    p = load_params(ROOT / "params.yaml", ["garments.categories=[tshirt, dress, vest, hoodie]"])
    assert p.garments.categories == ["tshirt", "dress", "vest", "hoodie"]
    with pytest.raises(ConfigError, match="dress, vest, cape, hoodie"):
        load_params(ROOT / "params.yaml", ["garments.categories=[poncho]"])


def test_bad_file(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  lr: 0.1\n  bogus: 3\n")
    with pytest.raises(ConfigError, match="train.bogus"):
        load_params(f)
    f.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(f)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "missing.yaml")


def test_parse_override():
    assert parse_override("a.b=1") == ("a", "b", 1)
    assert parse_override("a.b=[1, 2]") == ("a", "b", [1, 2])
    assert parse_override("a.b=x=y") == ("a", "b", "x=y")
    with pytest.raises(ConfigError):
        parse_override("ab=1")


def test_every_field_documented():
    rows = field_docs()
    assert all(doc for _, _, doc in rows)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert {k for k, _, _ in rows} == {f"{s}.{k}" for s, sec in raw.items() for k in sec}


def test_paper_preset_is_valid_and_paper_sized():
    p = load_params(ROOT / "pipeline" / "presets" / "paper.yaml")
    assert (p.model.stacks, p.model.depth, p.model.channels, p.model.grid) == (5, 4, 256, 32)
    assert (p.model.coarse_size, p.anchors.count, p.train.points, p.train.batch_size) == (512, 600, 5000, 4)
    # AnchorUDF-HD (section 4.4): 1024 px fine input, 15 more epochs of 12,060 steps.
    assert p.render.size == 1024 and p.model.hd_enabled and p.train.hd_steps == 15 * 12060
    assert p.model.hd_channels == 16 and p.train.hd_train == "all"
    assert p.model.decoder == [1024, 512, 256, 128] and p.train.lr == 5e-5
    assert p.sample.ratios == [0.01, 0.49, 0.5] and p.sample.uniform_ratio == 0
    assert p.evaluate.seeding == "uniform" and p.evaluate.filter_val == 0.007


def test_readme_embeds_the_params_reference_and_every_command():
    from anchorudf.cli import app
    from anchorudf.config import params_reference

    readme = (ROOT / "README.md").read_text()
    assert params_reference() in readme, "README params reference is stale: paste `anchorudf params --reference`"
    for cmd in app.registered_commands:
        assert f"anchorudf {cmd.name}" in readme, f"README does not document `anchorudf {cmd.name}`"
