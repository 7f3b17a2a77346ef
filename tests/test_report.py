"""``pacsim report`` end to end: report.md and a self-contained report.html, checked in a
headless browser (Debian chromium: every figure must load).

The browser check skips when chromium is missing, except in CI (``CI=true``), where it fails:
CI must install it (``apt-get install -y chromium``; ``.ci/run`` does, and says so loudly, setting
``PACSIM_BROWSER_UNAVAILABLE``, if the machine cannot).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap

import pandas as pd
import pytest
from click.testing import CliRunner
from test_analysis import make_results
from test_plots import run_folder

from pacsim.cli import main

#: Appended to a copy of the page: after load, count the images that decoded, and check that
#: a deliberately broken control image does not (so the check can fail).
_CHECK = """
<img id="pacsim-control" src="data:image/png;base64,AAAA">
<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images).filter(function (i) {
    return i.id !== "pacsim-control"; });
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var control = document.getElementById("pacsim-control").naturalWidth;
  var d = document.createElement("div");
  d.id = "pacsim-check";
  d.textContent = ok + "/" + imgs.length + " control=" + control;
  document.body.appendChild(d);
});
</script>
"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and os.path.exists("/usr/bin/chromium"):
        path = "/usr/bin/chromium"
    if path is None:
        if os.environ.get("PACSIM_BROWSER_UNAVAILABLE"):  # set by .ci/run when apt failed
            pytest.skip("chromium could not be installed: " + os.environ["PACSIM_BROWSER_UNAVAILABLE"])
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is required in CI for the report's browser check "
                        "(apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return path


def images_loaded(page, tmp_path) -> tuple[int, int]:
    """(figures that loaded, figures) of an HTML page in headless chromium."""
    html = page.read_text()
    assert html.count("</body>") == 1
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", _CHECK + "</body>"))
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000",
           "--dump-dom", probe.resolve().as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r'id="pacsim-check">(\d+)/(\d+) control=(\d+)<', out.stdout)
    assert m, "the check script did not run: " + out.stdout[-500:]
    assert m.group(3) == "0", "the browser check cannot see a broken image"
    return int(m.group(1)), int(m.group(2))


def _report(folder, *args):
    return CliRunner().invoke(main, ["report", str(folder), *args], catch_exceptions=False)


def test_report_synthetic_sweep_end_to_end(tmp_path):
    res = make_results({"rnn": 1.0, "rntk": 3.0}, Ls=(4, 8, 16), ms=(64, 256), n_max=2**14,
                       fail=("rnn", 8, 2))
    folder = run_folder(tmp_path / "mixed", res)
    r = _report(folder)
    assert r.exit_code == 0, r.output
    md, page = (folder / "report.md"), (folder / "report.html")
    assert r.output.split() == [str(md), str(page)]
    text = md.read_text()
    for section in ("## Summary", "## What was run", "## N_eps per cell", "## Fitted exponents",
                    "## Width", "## SGD against the kernels", "## Figures", "## Censored cells",
                    "## Failures and divergences"):
        assert section in text, section
    assert "rnn(m=64): N_eps ~ L^" in text and "95% CI [" in text
    assert text.count("> 16384 (censored)") == 4  # rntk at L=16, 2 widths, in 2 tables
    assert "RuntimeError: boom" in text and "abc1234" in text and "numba_version" in text
    assert "Seeds: 0, 1, 2, 3, 4, 5, 6, 7, 8." in text
    figs = re.findall(r"!\[[^]]*\]\(figures/([\w.]+\.png)\)", text)
    assert set(figs) == {"n_eps_vs_L.png", "test_error_vs_N.png", "ratio_sgd_kernel_vs_L.png",
                         "n_eps_vs_m.png"}
    assert all((folder / "figures" / f).stat().st_size > 1000 for f in figs)
    html = page.read_text()
    assert html.count('src="data:image/png;base64,') == 4 and "figures/" not in html
    assert "<script" not in html  # self-contained and static
    assert images_loaded(page, tmp_path) == (4, 4)


def test_report_tiny_real_sweep(tmp_path):
    """A real sweep (m = 8, L in {3, 4}, n_max = 64, 2 seeds, one worker), then the report."""
    import tomllib

    from pacsim.config import parse_sweep
    from pacsim.sweep import run_sweep

    cfg = parse_sweep(tomllib.loads(textwrap.dedent("""
        name = "tiny"
        seeds = [0, 1]
        [base.concept]
        d_x = 3
        [base.model]
        m = 8
        [base.train]
        n_test = 40
        [grid]
        "concept.L" = [3, 4]
        [target]
        eps = 1.2
        n_min = 8
        n_max = 64
        n_boot = 100
        """)))
    run_sweep(cfg, out=tmp_path / "runs", workers=1, progress=False)
    folder = tmp_path / "runs" / "tiny"
    r = _report(folder)
    assert r.exit_code == 0, r.output
    text = (folder / "report.md").read_text()
    sc = pd.read_parquet(folder / "sample_complexity.parquet")
    table = text.split("## N_eps per cell")[1].split("##")[0]
    assert len(re.findall(r"^\| rnn \| [34] \|", table, flags=re.M)) == 2  # both cells
    assert text.count("(censored)") >= sc["censored"].sum()
    assert '"name": "tiny"' in text  # the resolved config
    assert images_loaded(folder / "report.html", tmp_path) == (2, 2)


def test_report_other_eps_and_errors(tmp_path):
    folder = run_folder(tmp_path / "a", make_results({"rnn": 1.0}, Ls=(4, 8)))
    r = _report(folder, "--eps", "0.1")
    assert r.exit_code == 0, r.output
    assert "eps = 0.1" in (folder / "report.md").read_text()
    (folder / "sweep.json").unlink()
    r = _report(folder)
    assert r.exit_code != 0 and "--eps" in r.output
    r = _report(tmp_path / "nothing")
    assert r.exit_code != 0 and "run `pacsim sweep CONFIG` first" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_cells_without_runs_are_listed(tmp_path):
    """A cell that the caps left without any run is only in sample_complexity.parquet: the
    report lists it as censored, with the cap that censored it."""
    from pacsim.rundir import load_analysis

    res = make_results({"rnn": 1.0}, Ls=(4, 8), n_max=2**10)
    folder = run_folder(tmp_path / "caps", res)
    sc = pd.DataFrame({"cell": [0, 1, 2], "concept.L": [4, 8, 64], "eps": 0.5, "n_max": 2**10,
                       "n_cap": [2**10, 2**10, 0], "n_seeds": 9, "ci": 0.95,
                       "censored": [False, False, True],
                       "censored_by": [None, None, "max_steps"]})
    sc.to_parquet(folder / "sample_complexity.parquet")
    _, a = load_analysis(folder)
    row = a.table.set_index("cell").loc[2]
    assert row["censored"] and row["censored_by"] == "max_steps" and row["n_runs"] == 0
    assert row["concept.L"] == 64
    assert _report(folder).exit_code == 0
    cens = (folder / "report.md").read_text().split("## Censored cells")[1]
    assert "| rnn | 64 | > 0 (censored) |" in cens and "max_steps" in cens
    from pacsim.figures import make_figures

    fig = make_figures(a)["n_eps_vs_L"]
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "no runs (caps): rnn L=64" in texts


def test_report_shows_what_was_learned_for_composite_targets(tmp_path):
    """A tiny sweep on the AZL-ResNet parity target, a ResNet (two step sizes) and a kernel:
    the report has one row per cell with the medians of the decomp.* columns."""
    import tomllib

    from pacsim.config import parse_sweep
    from pacsim.sweep import run_sweep

    cfg = parse_sweep(tomllib.loads(textwrap.dedent("""
        name = "learned"
        seeds = [0, 1]
        [base.concept]
        family = "resnet-parity"
        [base.model]
        kind = "resnet"
        m = 8
        [base.train]
        protocol = "finite"
        optimizer = "momentum"
        loss = "mse"
        lr_units = "raw"
        lr = [0.1, 0.5]
        epochs = 2
        n_test = 60
        n_val = 30
        [[grid.model]]
        kind = "resnet"
        m = 8
        [[grid.model]]
        kind = "linear"
        degree = 2
        multilinear = true
        ridges = [0.0]
        [target]
        eps = 5.0  # reached by both (a cell censored on both sides has no ratio)
        n_min = 60
        n_max = 60
        n_boot = 100
        """)))
    run_sweep(cfg, out=tmp_path / "runs", workers=1, progress=False)
    folder = tmp_path / "runs" / "learned"
    res = pd.read_parquet(folder / "results.parquet")
    assert res[["decomp.F_coef", "decomp.G_coef", "decomp.rest_sse"]].notna().all().all()
    assert _report(folder).exit_code == 0
    text = (folder / "report.md").read_text()
    part = text.split("## What was learned: F and G")[1].split("\n## ")[0]
    rows = re.findall(r"^\| (resnet|linear)\S* \| 60 \| 2 \|", part, flags=re.M)
    assert sorted(rows) == ["linear", "resnet"], part
    chosen = res[res["lr_chosen"] & (res["model.kind"] == "resnet")]
    g = f"{chosen['decomp.G_coef'].median():.3g}"
    assert re.search(rf"^\| resnet\S* \| 60 \| 2 \| [^|]+ \| {re.escape(g)} \|", part, flags=re.M)


def test_report_has_no_decomposition_without_decomp_columns(tmp_path):
    folder = run_folder(tmp_path / "plain", make_results({"rnn": 1.0}, Ls=(4, 8)))
    assert _report(folder).exit_code == 0
    assert "What was learned" not in (folder / "report.md").read_text()
