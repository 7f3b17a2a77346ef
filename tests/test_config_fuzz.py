"""Property-based tests: random malformed configs get a one-line ConfigError, never a traceback.

Each example starts from a valid sweep and breaks it at random: unknown keys at any depth,
values of the wrong type, out of range, empty or duplicated lists, random grid keys and values,
random nested structures; or is random text given to the TOML loader. Every one must either
validate or raise :class:`pacsim.errors.ConfigError` with a single non-empty line.
"""

import copy
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacsim.config import SweepConfig, load_sweep, parse_sweep
from pacsim.errors import ConfigError

VALID = {
    "name": "fuzz",
    "seeds": [0, 1],
    "base": {
        "concept": {"family": "azl", "L": 4, "d_x": 3},
        "model": {"kind": "rnn", "m": 8},
        "train": {"protocol": "finite", "lr": [0.5, 1.0], "n_test": 10, "epochs": 2},
    },
    "grid": {"concept.L": [3, 4]},
    "target": {"eps": 0.5, "n_min": 8, "n_max": 64},
}

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from([0, -1, 1, 2**63, 0.0, -0.5, 1e308, "8", "", "rnn", "azl", "online"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
names = st.one_of(st.sampled_from(["L", "m", "lr", "seeds", "grid", "kind", "family", "eps",
                                   "n_max", "protocol", "concept", "model", "train", "target",
                                   "concept.L", "model.m", "train.lr", "model.kind", ""]),
                  st.text(max_size=10))


def _paths(d, prefix=()):
    """Every key path of a nested dict."""
    for k, v in d.items():
        yield (*prefix, k)
        if isinstance(v, dict):
            yield from _paths(v, (*prefix, k))


def _check(raw):
    try:
        cfg = parse_sweep(raw, source="fuzz.toml")
    except ConfigError as e:
        msg = str(e)
        assert msg.startswith("fuzz.toml: ") and len(msg) > len("fuzz.toml: ")
        assert len(msg.splitlines()) == 1, msg
        return None
    assert isinstance(cfg, SweepConfig)
    return cfg


@SETTINGS
@given(data=st.data())
def test_a_value_replaced_at_random(data):
    raw = copy.deepcopy(VALID)
    path = data.draw(st.sampled_from(sorted(_paths(raw))))
    node = raw
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = data.draw(values)
    _check(raw)


@SETTINGS
@given(data=st.data())
def test_an_unknown_key_is_always_refused(data):
    raw = copy.deepcopy(VALID)
    sections = [(), ("base", "concept"), ("base", "model"), ("base", "train"), ("target",),
                ("base",)]
    where = data.draw(st.sampled_from(sections))
    node = raw
    for k in where:
        node = node[k]
    key = data.draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in node))
    node[key] = data.draw(values)
    with pytest.raises(ConfigError) as e:
        parse_sweep(raw, source="fuzz.toml")
    assert len(str(e.value).splitlines()) == 1


@SETTINGS
@given(grid=st.dictionaries(names, st.one_of(values, st.lists(scalars, max_size=3)),
                            max_size=3))
def test_random_grids(grid):
    _check({**VALID, "grid": grid})


@SETTINGS
@given(seeds=st.one_of(values, st.lists(st.integers(min_value=-3, max_value=3), max_size=5)))
def test_random_seeds(seeds):
    cfg = _check({**VALID, "seeds": seeds})
    if cfg is not None:
        assert len(set(cfg.seeds)) == len(cfg.seeds) >= 1 and min(cfg.seeds) >= 0


@SETTINGS
@given(target=st.dictionaries(st.sampled_from(["eps", "n_min", "n_max", "grid_factor",
                                               "rel_tol", "n_boot", "ci",
                                               "points_per_doubling"]),
                              st.one_of(scalars, st.floats()), max_size=4))
def test_random_targets(target):
    cfg = _check({**VALID, "target": target})
    if cfg is not None:
        t = cfg.target
        assert 0 < t.eps < math.inf and 1 <= t.n_min <= t.n_max and 0 < t.ci < 1


@SETTINGS
@given(raw=values)
def test_random_documents(raw):
    _check(raw)


@SETTINGS
@given(text=st.one_of(st.text(max_size=200),
                      st.sampled_from(['name = "x"\nseeds = [0]\n[grid]\n"concept.L" = [',
                                       'name = "x"\nseeds = [0, 0]\n',
                                       'name = "x"\nseeds = [0]\n[base.model]\nm = 1e400\n',
                                       'name = "x"\nseeds = [0]\n[target]\nn_max = 0\n'])))
def test_random_toml_files(text):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.toml"
        path.write_text(text)
        try:
            load_sweep(path)
        except ConfigError as e:
            assert len(str(e).splitlines()) == 1, str(e)
