"""Every learner kind and concept family declares its contract once (LearnerKind,
ConceptFamily); the registries hold those declarations, and the results table carries the
learner's kind and whether it is trained by SGD."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import BaseModel

from pacsim import concepts, learners
from pacsim.concepts.base import ConceptFamily
from pacsim.config import parse_sweep
from pacsim.learners.base import LearnerKind
from pacsim.sweep import run_sweep


def test_every_learner_declares_its_contract():
    assert set(learners.LEARNERS) == {"rnn", "resnet", "mlp2", "mlp3", "ntk", "nngp", "rntk",
                                      "entk", "random_features", "poly", "gaussian", "linear"}
    for name, kind in learners.LEARNERS.items():
        assert isinstance(kind, LearnerKind) and kind.name == name
        assert kind.Config().kind == name and set(kind.ACCEPTS) <= {"sequence", "vector"}
        assert kind.SGD is (name in ("rnn", "resnet", "mlp2", "mlp3"))


def test_every_family_declares_its_contract():
    for name, fam in concepts.FAMILIES.items():
        assert isinstance(fam, ConceptFamily) and fam.name == name
        assert fam.Config().family == name and fam.KIND in ("sequence", "vector")


def test_a_misdeclared_contract_is_refused_at_import():
    class Config(BaseModel):
        kind: str = "other"

    with pytest.raises(TypeError, match="kind = 'mine'"):
        LearnerKind("mine", Config, make=lambda *a: None, warmup=lambda d: None, SGD=True,
                    ACCEPTS=("sequence",))


def test_results_carry_the_kind_and_sgd(tmp_path):
    cfg = parse_sweep({
        "name": "kinds", "seeds": [0],
        "base": {"concept": {"L": 4, "d_x": 3}, "train": {"lr": 0.5, "n_test": 30}},
        "grid": {"model": [{"kind": "rnn", "m": 8}, {"kind": "rntk"}]},
        "target": {"n_min": 8, "n_max": 16, "points_per_doubling": 1, "n_boot": 100},
    })
    run_sweep(cfg, out=tmp_path, workers=1, progress=False)
    res = pd.read_parquet(tmp_path / "kinds" / "results.parquet")
    assert res.groupby("model.kind")["sgd"].agg(set).to_dict() == {"rnn": {True},
                                                                  "rntk": {False}}
