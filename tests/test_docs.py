"""The docs describe the code as it is: every config key is documented with its default."""

import re
from pathlib import Path

import pytest

from pacsim.concepts import FAMILIES
from pacsim.config import TargetConfig, TrainConfig
from pacsim.learners import LEARNERS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()

SECTIONS = (
    [(f"`[base.concept]` family `{name}`", mod.Config) for name, mod in FAMILIES.items()]
    + [(f"`[base.model]` kind `{name}`", mod.Config) for name, mod in LEARNERS.items()]
    + [("`[base.train]`", TrainConfig), ("`[target]`", TargetConfig)]
)


@pytest.mark.parametrize("section, model", SECTIONS, ids=[s for s, _ in SECTIONS])
def test_every_config_key_is_documented_with_its_default(section, model):
    assert f"## {section}" in DOC, f"docs/config.md has no section '## {section}'"
    block = DOC.split(f"## {section}")[1].split("\n## ")[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", block, flags=re.M))
    assert set(rows) == set(model.model_fields), section
    for name, field in model.model_fields.items():
        default = field.default
        shown = rows[name].strip().strip("`")
        if isinstance(default, tuple):
            default = list(default)
        expected = f'"{default}"' if isinstance(default, str) else str(default)
        if isinstance(default, list):
            expected = "[" + ", ".join(f'"{v}"' for v in default) + "]"
        assert shown == expected, (section, name, shown, expected)
