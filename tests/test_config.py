"""Config loading: strict, frozen models and one-line errors naming key, value and what is allowed."""

from pathlib import Path

import pytest

from pacsim.config import RunSpec, geometric_grid, load_sweep, parse_sweep
from pacsim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _sweep(**kw):
    return {"name": "t", "seeds": [0, 1]} | kw


def test_quickstart_config_is_valid():
    cfg = load_sweep(ROOT / "configs" / "quickstart.toml")
    cells = cfg.cells()
    assert [v["concept.L"] for v, _ in cells] == [4, 6, 8, 12]
    assert all(spec.concept.L == v["concept.L"] for v, spec in cells)
    assert cells[0][1].model.m == 128


def test_target_caps_load_from_the_config():
    t = parse_sweep(_sweep(target={"max_steps": 40, "max_wall_s": 2.5})).target
    assert (t.max_steps, t.max_wall_s) == (40, 2.5)
    assert (parse_sweep(_sweep()).target.max_steps, parse_sweep(_sweep()).target.max_wall_s) == (None, None)


def test_grid_accepts_nested_and_dotted_keys():
    a = parse_sweep(_sweep(grid={"concept": {"L": [3, 5]}, "model.m": [4, 8]}))
    assert [(s.concept.L, s.model.m) for _, s in a.cells()] == [(3, 4), (3, 8), (5, 4), (5, 8)]


def test_configs_are_frozen():
    spec = RunSpec()
    with pytest.raises(Exception, match="frozen"):
        spec.model.m = 3


@pytest.mark.parametrize(
    "raw, message",
    [
        (_sweep(base={"model": {"widht": 3}}), "unknown key 'base.model.widht'; allowed here: kind, mode, m"),
        (_sweep(base={"model": {"m": -4}}), "base.model.m = -4: Input should be greater than or equal to 1"),
        (_sweep(base={"model": {"m": "8"}}), "base.model.m = '8': Input should be a valid integer"),
        (_sweep(base={"concept": {"links": ["tanh"]}}), "base.concept.links.0 = 'tanh': Input should be 'z2'"),
        (_sweep(base={"train": {"lr": [0.1, -1]}}), "base.train.lr = [0.1, -1]: allowed: \"auto\", a positive"),
        (_sweep(base={"train": {"protocol": "batch"}}), "Input should be 'online' or 'finite'"),
        (_sweep(seeds=[0, 0]), "duplicate seeds [0]"),
        (_sweep(seeds=[]), "at least one seed"),
        (_sweep(grid={"concept.L": []}), "grid: concept.L must be a non-empty list"),
        (_sweep(grid={"concept.L": [2, 4]}), "grid point (concept.L=2): concept.L = 2"),
        (_sweep(grid={"seed": [1]}), "grid key 'seed' is not a base setting"),
        (_sweep(grid={"model.m": [4, 4]}), "model.m has duplicate values"),
        (_sweep(target={"n_min": 100, "n_max": 10}), "n_min = 100 exceeds n_max = 10"),
        (_sweep(target={"max_wall_s": 0}), "target.max_wall_s = 0: Input should be greater than 0"),
        (_sweep(target={"max_steps": 0}), "target.max_steps = 0: Input should be greater than or equal to 1"),
        (_sweep(name="a b"), "name = 'a b': String should match pattern"),
        ({"seeds": [0]}, "missing required key 'name'"),
        (_sweep(tagret={}), "unknown key 'tagret'; allowed here: name, seeds, base, grid, target"),
    ],
)
def test_bad_config_gives_one_line_error(raw, message):
    with pytest.raises(ConfigError) as e:
        parse_sweep(raw, source="x.toml")
    text = str(e.value)
    assert text.startswith("x.toml: ") and message in text
    assert "\n" not in text


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_sweep(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_sweep(bad)


def test_geometric_grid():
    assert geometric_grid(16, 64, 1) == [16, 32, 64]
    assert geometric_grid(16, 64, 2) == [16, 23, 32, 45, 64]
    assert geometric_grid(10, 10, 4) == [10]
    assert geometric_grid(16, 100, 1) == [16, 32, 64, 100]  # the budget is always a checkpoint


def test_grid_of_whole_model_tables_inherits_shared_base_keys():
    cfg = parse_sweep(_sweep(base={"model": {"m": 64, "eps_x": 0.5}},
                             grid={"model": [{"kind": "rnn"}, {"kind": "rnn", "m": 8}],
                                   "model.lam": [1.0, 2.0]}))
    got = [(v["model"], s.model.m, s.model.eps_x, s.model.lam) for v, s in cfg.cells()]
    assert got == [({"kind": "rnn"}, 64, 0.5, 1.0), ({"kind": "rnn"}, 64, 0.5, 2.0),
                   ({"kind": "rnn", "m": 8}, 8, 0.5, 1.0), ({"kind": "rnn", "m": 8}, 8, 0.5, 2.0)]


def test_concept_tables_without_family_are_labelled_by_their_keys():
    from pacsim.config import section_label

    cfg = parse_sweep(_sweep(base={"concept": {"family": "regular"}, "model": {"mode": "pg21"}},
                             grid={"concept": [{"language": "parity"}, {"language": "tomita3"}]}))
    assert [section_label(v["concept"]) for v, _ in cfg.cells()] == ["language=parity",
                                                                     "language=tomita3"]


def test_whole_model_tables_do_not_inherit_the_base_kinds_defaults():
    """Only keys written in [base.model] are inherited: an mlp2 table next to an rnn base gets
    its own defaults, not the rnn's (both kinds have ``m``; only the written one carries over)."""
    cfg = parse_sweep(_sweep(base={"concept": {"L": 4}, "model": {"eps_x": 0.5}},
                             grid={"model": [{"kind": "rnn"}, {"kind": "mlp2", "m": 32}]}))
    (_, rnn), (_, mlp2) = cfg.cells()
    assert (rnn.model.kind, rnn.model.eps_x, rnn.model.m) == ("rnn", 0.5, 256)
    assert (mlp2.model.kind, mlp2.model.m) == ("mlp2", 32)
    assert mlp2.model == type(mlp2.model)(kind="mlp2", m=32)  # every other key its default


@pytest.mark.parametrize(
    "raw, message",
    [
        (_sweep(base={"model": {"kind": "cnn"}}), "base.model: unknown model.kind; allowed: 'rnn'"),
        (_sweep(base={"concept": {"family": "x"}}), "base.concept: unknown concept.family; allowed: 'azl'"),
        (_sweep(grid={"model": [4, 8]}), "grid: model must be a list of tables"),
        (_sweep(grid={"model": [{"kind": "rnn", "q": 1}]}), "grid point (model=rnn(q=1)): unknown key 'model.q'"),
        (_sweep(grid={"model.q": [1]}), "grid point (model.q=1): unknown key 'model.q'; allowed here: kind, mode"),
        (_sweep(base={"concept": {"L": 4}, "model": {"mode": "pg21"}}),
         'model.mode = "pg21" scores only the end position L-1 (3 at L = 4), but the concept also scores 2'),
    ],
)
def test_tagged_sections_give_one_line_errors(raw, message):
    with pytest.raises(ConfigError) as e:
        parse_sweep(raw, source="x.toml")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_momentum_optimizer_needs_the_finite_protocol():
    with pytest.raises(ConfigError, match='optimizer = "momentum" needs protocol = "finite"'):
        parse_sweep(_sweep(base={"train": {"optimizer": "momentum"}}))
    cfg = parse_sweep(_sweep(base={"train": {"optimizer": "momentum", "protocol": "finite"}}))
    assert cfg.base.train.batch == 50 and cfg.base.train.momentum == 0.9


def test_minibatch_optimizer_settings_are_checked():
    def train(**kw):
        return parse_sweep(_sweep(base={"train": kw})).base.train

    with pytest.raises(ConfigError, match='"minibatch" needs protocol = "finite"'):
        train(optimizer="minibatch")
    with pytest.raises(ConfigError, match='optimizer = "minibatch" has none'):
        train(optimizer="minibatch", protocol="finite", weight_decay=1e-3)
    with pytest.raises(ConfigError, match="momentum preset runs all its epochs"):
        train(optimizer="momentum", protocol="finite", patience=3)
    ok = train(optimizer="minibatch", protocol="finite", patience=3, batch=8)
    assert ok.batch == 8 and ok.patience == 3
