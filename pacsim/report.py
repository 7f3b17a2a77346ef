"""``pacsim report RUN_DIR``: one Markdown and one self-contained HTML file per run folder.

The report says what was run (config, seeds, versions from the provenance columns), gives the
headline table (N_eps per cell with its CI, censored cells written ``> n_max``), the fitted
exponents with their CIs, the SGD / kernel ratios, the figures, the censored cells and the
runs that failed or diverged. Everything is computed from ``results.parquet``
(:func:`pacsim.rundir.load_analysis`).

``report.md`` links the PNG files in ``figures/``; ``report.html`` embeds them (base64), so it
can be mailed or archived alone. Both are rendered from one list of blocks.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import __version__
from .figures import FIGURES, make_figures, save_figures
from .rundir import load_analysis, read_target
from .store import RunDir, write_atomic
from .tables import (
    Analysis,
    concept_keys,
    config_columns,
    display_fits,
    display_n_eps,
    display_ratios,
    fmt_exponent,
)

#: Provenance columns of results.parquet, in the order the report lists them.
PROVENANCE = ("pacsim_version", "git_commit", "python_version", "numpy_version",
              "numba_version", "scipy_version", "host")


@dataclass
class Report:
    """A report as blocks: ``("h2"|"p"|"li", text)``, ``("table", df)``,
    ``("details", (summary, text))``, ``("figure", (stem, png bytes, caption))``."""

    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def add(self, kind: str, content) -> None:
        self.blocks.append((kind, content))


def write_report(run_dir: str | Path, eps: float | None = None) -> tuple[Path, Path]:
    """Write ``RUN_DIR/report.md`` and ``RUN_DIR/report.html`` (and the figures they show, in
    ``RUN_DIR/figures/``); return the two paths."""
    from .theory.summary import read_theory

    rd = RunDir(run_dir)
    results, a = load_analysis(rd.path, eps)
    theory = read_theory(rd.path)
    figs = make_figures(a, theory)
    save_figures(figs, rd.figures)
    pngs = {name: (rd.figures / f"{name}.png").read_bytes() for name in figs}
    report = build_report(rd.path, results, a, pngs, theory)
    md, page = rd.path / "report.md", rd.path / "report.html"
    write_atomic(md, to_markdown(report).encode())
    write_atomic(page, to_html(report).encode())
    return md, page


def build_report(run_dir: Path, results: pd.DataFrame, a: Analysis, pngs: dict,
                 theory: pd.DataFrame | None = None) -> Report:
    """The report's blocks (no I/O but reading ``sweep.json``). ``theory``: the rows of
    ``theory.parquet`` (``pacsim theory``), for the "Theory vs measurement" section."""
    cfg = _sweep_json(run_dir)
    name = cfg.get("name", run_dir.name) if cfg else run_dir.name
    r = Report(f"pacsim report: {name}")
    t = a.table
    target = read_target(run_dir)
    n_boot = target.get("n_boot", 1000)
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    r.add("p", f"Generated {now} by pacsim {__version__} from `results.parquet` "
               f"({len(results)} rows) in `{run_dir}`.")
    r.add("p", f"N_eps is the smallest evaluated number of training samples n at which the "
               f"median over seeds of the normalised test error (test MSE / test label "
               f"variance) is <= eps = {a.eps:g}. CIs are percentile bootstraps over seeds "
               f"({n_boot} resamples, {a.ci:.0%}). A cell that never reaches eps is censored: "
               f"N_eps > n_max is all that is known; it is listed, never dropped.")

    r.add("h2", "Summary")
    n_cens, n_cells = int(t["censored"].sum()), len(t)
    runs = results.drop_duplicates("run_id") if "run_id" in results else results
    r.add("li", f"{n_cells} cells, {len(pd.unique(results['seed']))} seeds, {len(runs)} runs; "
                f"{n_cens} censored cell{'s' if n_cens != 1 else ''}; "
                f"{int(t['n_failed'].sum())} failed, {int(t['n_diverged'].sum())} diverged and "
                f"{int(t['n_timeout'].sum())} timed-out runs.")
    for _, f in a.fits.iterrows():
        r.add("li", _fit_sentence(f, a))
    if not a.fits.empty and a.fits["exponent"].isna().all():
        r.add("li", "No exponent could be fitted (see the notes in the exponent table).")
    if a.x is None:
        r.add("li", "No numeric scaling variable (concept.L or another varying concept key): "
                    "N_eps is shown per cell.")

    _what_was_run(r, run_dir, results, cfg, a)

    r.add("h2", "N_eps per cell")
    r.add("table", display_n_eps(t))
    learned = decomp_table(results, t)
    if learned is not None:
        r.add("h2", "What was learned: F and G")
        r.add("p", "For a target H = beta F + alpha G(F): the learned function fitted on the test "
                   "set, output by output, by least squares on a constant, F and alpha G(F) "
                   "(docs/concepts.md). F_coef and G_coef are the coefficients averaged over the "
                   "outputs (the target has beta and 1; 0: not learned), rest_sse the squared "
                   "error outside that span (test_sse units). Medians over the seeds, at each "
                   "cell's largest n, at the step size chosen on validation.")
        r.add("table", learned)
    if a.x is not None:
        r.add("h2", f"Fitted exponents: N_eps ~ a {_short(a.x)}^b")
        r.add("p", "Least squares of log N_eps on log " + _short(a.x) + " over the cells that are "
              "not censored. CI: seeds resampled jointly across the line's cells (cells sharing "
              "a seed share its target and data), N_eps recomputed in every cell, refitted. A "
              "resample in which a fitted cell is censored has an unbounded slope, so the CI "
              "becomes infinite when such resamples pass the CI's tail (the data do not bound "
              "the exponent). Censored cells are not fitted; when they lie beyond the fitted "
              "range the exponent is likely an underestimate.")
        r.add("table", display_fits(a.fits))
    if not a.fits_m.empty:
        r.add("h2", "Width: N_eps ~ a m^b")
        r.add("p", "Theory (AZL) allows at most a log m dependence: b should be near 0.")
        r.add("table", display_fits(a.fits_m))
    if not a.ratios.empty:
        r.add("h2", "SGD against the kernels: N_eps(SGD) / N_eps(kernel)")
        r.add("p", "Per concept cell, every SGD learner over every kernel learner (paired on the "
                   "model keys both have, e.g. the width). Below 1: SGD needs fewer samples. "
                   "'<': the kernel is censored (an upper bound); '>': SGD is censored (a lower "
                   "bound). CI: joint bootstrap over seeds.")
        r.add("table", display_ratios(a.ratios))
    if theory is not None and len(theory):
        _theory_section(r, t, theory, a.eps)

    r.add("h2", "Figures")
    for stem, png in pngs.items():
        caption = FIGURES.get(stem, stem.replace("_", " "))
        r.add("figure", (stem, png, caption))

    r.add("h2", "Censored cells")
    cens = t[t["censored"]]
    if cens.empty:
        r.add("p", "None: every cell reached eps within its budget.")
    else:
        r.add("p", f"{len(cens)} cell{'s' if len(cens) > 1 else ''} did not reach eps = "
                   f"{a.eps:g} within the budget: N_eps > n_max.")
        r.add("table", display_n_eps(cens))

    r.add("h2", "Failures and divergences")
    if a.failures.empty:
        r.add("p", "None: every run finished without diverging.")
    else:
        fails = a.failures.copy()
        if "error" in fails:
            fails["error"] = fails["error"].map(lambda e: str(e).splitlines()[0][:200]
                                                if e is not None and e == e else "")
        r.add("p", f"{(fails['status'] == 'failed').sum()} failed and "
                   f"{(fails['status'] == 'diverged').sum()} diverged runs. A failed or diverged "
                   f"seed counts as 'not reached' (+inf) in the median from then on.")
        r.add("table", fails)
    return r


#: The decomposition columns of results.parquet (pacsim.decomp), and their report headings.
DECOMP = {"decomp.F_coef": "F_coef", "decomp.G_coef": "G_coef", "decomp.rest_sse": "rest_sse"}


def decomp_table(results: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame | None:
    """Per cell, at its largest evaluated n, the medians over seeds of ``test_sse`` and the
    ``decomp.*`` columns (rows of the step size chosen on validation); ``None`` when no run
    recorded them (a target not of the form beta F + alpha G(F))."""
    if not set(DECOMP) <= set(results.columns):
        return None
    df = results[results[list(DECOMP)].notna().any(axis=1)]
    if "lr_chosen" in df:
        df = df[df["lr_chosen"].astype(bool)]
    if df.empty:
        return None
    df = df[df["n"] == df.groupby("cell")["n"].transform("max")]
    agg = {"n": ("n", "first"), "seeds": ("seed", "nunique")}
    agg |= {short: (col, "median") for col, short in DECOMP.items()}
    if "test_sse" in df:
        agg["test_sse"] = ("test_sse", "median")
    med = df.groupby("cell", sort=True).agg(**agg).reset_index()
    keys = [k for k in concept_keys(list(table.columns)) if k in table]
    out = table[["cell", "setting", *keys]].merge(med, on="cell", how="inner")
    for col in [*DECOMP.values(), "test_sse"]:
        if col in out:
            out[col] = out[col].map(lambda v: f"{v:.3g}" if v == v else "n/a")
    return out.drop(columns="cell").rename(columns={k: k.split(".", 1)[1] for k in keys})


# Rendering


def to_markdown(r: Report) -> str:
    out = [f"# {r.title}", ""]
    for kind, content in r.blocks:
        if kind != "li" and out[-1] != "":
            out.append("")  # end a list
        if kind == "h2":
            out += [f"## {content}", ""]
        elif kind == "p":
            out += [str(content), ""]
        elif kind == "li":
            out += [f"- {content}"]
        elif kind == "details":
            summary, text = content
            out += [f"<details><summary>{summary}</summary>", "", "```", text, "```", "",
                    "</details>", ""]
        elif kind == "table":
            out += [_md_table(content), ""]
        elif kind == "figure":
            stem, _, caption = content
            out += [f"![{caption}](figures/{stem}.png)", "",
                    f"*{caption}* ([PDF](figures/{stem}.pdf))", ""]
    return "\n".join(out).rstrip() + "\n"


def to_html(r: Report) -> str:
    body = [f"<h1>{html.escape(r.title)}</h1>"]
    in_list = False
    for kind, content in r.blocks:
        if kind == "li" and not in_list:
            body.append("<ul>")
            in_list = True
        elif kind != "li" and in_list:
            body.append("</ul>")
            in_list = False
        if kind == "h2":
            body.append(f"<h2>{html.escape(str(content))}</h2>")
        elif kind == "p":
            body.append(f"<p>{_inline(content)}</p>")
        elif kind == "li":
            body.append(f"<li>{_inline(content)}</li>")
        elif kind == "details":
            summary, text = content
            body.append(f"<details><summary>{html.escape(summary)}</summary>"
                        f"<pre>{html.escape(text)}</pre></details>")
        elif kind == "table":
            body.append(_html_table(content))
        elif kind == "figure":
            stem, png, caption = content
            data = base64.b64encode(png).decode("ascii")
            body.append(f'<figure id="{html.escape(stem)}"><img alt="{html.escape(caption)}" '
                        f'src="data:image/png;base64,{data}"><figcaption>'
                        f"{html.escape(caption)}</figcaption></figure>")
    if in_list:
        body.append("</ul>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(r.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body) + "\n</body>\n</html>\n"
    )


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5rem 0 1.2rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.55rem; text-align: left; vertical-align: top;
         white-space: nowrap; }
td:last-child { white-space: normal; }
th { background: #f2f2f2; }
tr.censored td { background: #fff4e0; }
code, pre { background: #f6f6f6; font-size: 0.85rem; }
pre { padding: 0.6rem; overflow-x: auto; }
figure { margin: 1rem 0 2rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-style: italic; color: #555; }
"""


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "(empty)"
    cols = [str(c) for c in df.columns]
    rows = [[_cell(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p>(empty)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for row in df.itertuples(index=False):
        cells = [_cell(v) for v in row]
        cls = ' class="censored"' if any("censored" in c for c in cells) else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return ""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _inline(text) -> str:
    """Escape, then turn `code` spans into <code>."""
    parts = html.escape(str(text)).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


# Content helpers


def _what_was_run(r: Report, run_dir: Path, results: pd.DataFrame, cfg: dict | None,
                  a: Analysis) -> None:
    r.add("h2", "What was run")
    seeds = [int(s) for s in pd.unique(results["seed"])]
    wall = results.drop_duplicates("run_id")["wall_s"].sum() if {"run_id", "wall_s"} <= set(
        results.columns) else float("nan")
    r.add("li", f"Seeds: {', '.join(map(str, seeds))}.")
    r.add("li", f"Grid (keys that vary between cells): "
                f"{', '.join(f'`{k}`' for k in a.keys) or 'none (one cell)'}.")
    if wall == wall:
        r.add("li", f"Training time summed over runs: {wall:.1f} s.")
    if a.keys:
        grid = pd.DataFrame({"key": a.keys, "values": [
            ", ".join(str(v) for v in _unique_sorted(results[k])) for k in a.keys]})
        r.add("table", grid)
    fixed = [c for c in config_columns(results) if c not in a.keys]
    if fixed:
        values = [", ".join(str(v) for v in _unique_sorted(results[c])) for c in fixed]
        r.add("p", "Settings shared by every cell (learner-specific keys show the values of the "
                   "learners that have them):")
        r.add("table", pd.DataFrame({"key": fixed, "value": values}))
    prov = [c for c in PROVENANCE if c in results]
    if prov:
        runs = results.drop_duplicates("run_id") if "run_id" in results else results
        rows = []
        for c in prov:
            counts = runs[c].fillna("unknown").astype(str).value_counts()
            rows.append({"": c, "value": ", ".join(
                f"{v} ({n} runs)" if len(counts) > 1 else v for v, n in counts.items())})
        r.add("p", "Versions (provenance of the runs):")
        r.add("table", pd.DataFrame(rows))
        mixed = [c for c in prov if c != "host" and runs[c].astype(str).nunique() > 1]
        if mixed:
            r.add("p", f"Warning: the runs were produced by different {', '.join(mixed)}.")
    if cfg:
        r.add("details", ("The sweep config as written (sweep.json; every default in docs/config.md)",
                             json.dumps(cfg, indent=2)))


def _theory_section(r: Report, table: pd.DataFrame, theory: pd.DataFrame, eps: float) -> None:
    from .theory.summary import comparison

    r.add("h2", "Theory vs measurement")
    seeds = theory["seed"].nunique() if "seed" in theory else 0
    r.add("p", "Predicted N_eps of each kernel cell from the spectral learning-curve theory of "
               "kernel ridge regression (Bordelon, Canatar & Pehlevan 2020, arXiv 2002.02561; "
               "Simon et al. 2021, arXiv 2110.03922), the kernel's spectrum and the target's "
               "coefficients estimated from the Gram matrix of M fresh samples "
               f"(`theory.parquet`, written by `pacsim theory`; {seeds} seed(s), at the ridge "
               "each run chose); and of each SGD cell with a linearised oracle (mlp2, mlp3, "
               "resnet, the ReLU rnn) from its network linearised at the run's own "
               "initialisation (Lee et al. 2019, arXiv 1902.06720), at the step size the run "
               "chose: online SGD in expectation (M fresh samples) or, for the finite "
               "protocol, the run's own SGD replayed on the linearised network ('basis'). "
               "Predicted N_eps is read on the same "
               "n grid as the measured one; the range comes from the in-sample (optimistic) "
               "and held-out (pessimistic) estimates. 'tight': they agree within the stated "
               "tolerance. A measured / predicted ratio far from 1 for an SGD cell says the "
               "run left the kernel regime. "
               "See docs/theory.md for when the prediction should hold.")
    r.add("table", comparison(table, theory, eps))


def _fit_sentence(f: pd.Series, a: Analysis) -> str:
    x = _short(a.x)
    if pd.isna(f["exponent"]):
        return f"{f['line']}: no exponent ({f['note']})."
    text = (f"{f['line']}: N_eps ~ {x}^{fmt_exponent(f['exponent'])}, {a.ci:.0%} CI "
            f"[{fmt_exponent(f['ci_lo'])}, {fmt_exponent(f['ci_hi'])}] "
            f"({f['n_points']} cells fitted")
    text += f", {f['n_censored']} censored)" if f["n_censored"] else ")"
    return text + (f"; {f['note']}." if f["note"] else ".")


def _sweep_json(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "sweep.json").read_text())
    except (OSError, ValueError):
        return None


def _unique_sorted(s: pd.Series) -> list:
    vals = pd.unique(s.dropna())
    try:
        return sorted(vals)
    except TypeError:
        return list(vals)


def _short(key: str | None) -> str:
    return {"concept.L": "L", "model.m": "m"}.get(key, key or "")
