"""The smallest real sweep (seconds on one worker: two lengths, two seeds, m = 8), shared by the
tests that drive the command line on a real run folder."""

from __future__ import annotations

_TOML = """
name = "{name}"
seeds = [0, 1]
[base.concept]
d_x = 3
[base.model]
m = 8
[base.train]
lr = 0.5
n_test = 40
[grid]
"concept.L" = [3, 4]
[target]
eps = 0.9
n_min = 8
n_max = 64
n_boot = 100
"""


def tiny_toml(name: str) -> str:
    """The tiny sweep's config text, named ``name`` (its run folder is ``OUT/<name>``)."""
    return _TOML.replace("{name}", name)
