"""Plots render to PNG without a display, for a loss of every form and for synthetic search data."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoloss.cli import main
from autoloss.plots import (
    plot_classification_loss,
    plot_funnel,
    plot_loss,
    plot_regression_loss,
    plot_search_progress,
)
from symbolic.zoo import KNOWN_LOSSES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPO_ROOT = Path(__file__).resolve().parents[2]


def assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE)


def all_texts(figure):
    """Titles, axis labels and legend entries of every axes of a figure."""
    texts = [figure._suptitle.get_text()] if figure._suptitle else []
    for ax in figure.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.get_legend().get_texts()]
    return texts


@pytest.mark.parametrize("name", ["cse_b_cls", "cse_a_cls"])
def test_classification_plot_renders_with_baselines(tmp_path, name):
    path = tmp_path / f"{name}.png"
    figure = plot_classification_loss(KNOWN_LOSSES[name].candidate, path=str(path))
    assert_png(path)
    texts = all_texts(figure)
    assert len(figure.axes) == 4 and "dL/dx" in texts
    assert {"bce", "focal"} <= set(texts) if name == "cse_b_cls" else "ce" in texts
    assert any("IoU 0.25" in text for text in texts)
    if name == "cse_a_cls":
        assert any("3 classes" in text for text in texts)


def test_regression_plot_renders_at_every_scale(tmp_path):
    path = tmp_path / "reg.png"
    figure = plot_regression_loss(KNOWN_LOSSES["cse_b_reg"].candidate, scales=(4, 32, 256), path=str(path))
    assert_png(path)
    texts = all_texts(figure)
    assert {"iou", "giou", "side 4 px", "side 256 px", "IoU with the ground truth"} <= set(texts)


def test_loss_plots_refuse_a_form_they_do_not_draw():
    with pytest.raises(ValueError, match="classification"):
        plot_classification_loss(KNOWN_LOSSES["iou"].candidate)
    with pytest.raises(ValueError, match="reg-form"):
        plot_regression_loss(KNOWN_LOSSES["bce"].candidate)
    with pytest.raises(ValueError, match="not sigmoid-form"):
        plot_loss(KNOWN_LOSSES["focal"].candidate, baselines=["ce"])


SYNTHETIC_GENERATIONS = [
    {"generation": 0, "proxy_aps": [0.21, 0.25, math.nan, 0.18]},
    {"generation": 2, "proxy_aps": [0.27, 0.30, 0.26]},
    {"generation": 1, "proxy_aps": []},  # nobody reached the proxy task
    {"generation": 3, "proxy_aps": [0.31, 0.29], "seconds": 120.0},
]


def test_search_progress_renders_from_per_generation_records(tmp_path):
    path = tmp_path / "progress.png"
    figure = plot_search_progress(SYNTHETIC_GENERATIONS, path=str(path))
    assert_png(path)
    best = next(line for line in figure.axes[0].get_lines() if line.get_label() == "best")
    assert list(best.get_xdata()) == [0, 1, 2, 3]
    assert math.isnan(best.get_ydata()[1]) and best.get_ydata()[3] == pytest.approx(0.31)
    assert {"best", "median", "candidates", "generation", "proxy AP"} <= set(all_texts(figure))


def test_funnel_renders_with_counts_and_shares(tmp_path):
    path = tmp_path / "funnel.png"
    figure = plot_funnel({"generated": 12000, "cpv": 900, "mos": 150, "proxy": 0}, path=str(path))
    assert_png(path)
    texts = all_texts(figure)
    assert any("passed CPV: 900 (7.5% of generated)" in text for text in texts)


@pytest.mark.parametrize("bad, message", [
    ([{"generation": 0}], "proxy_aps"),
    ([], "no generations"),
])
def test_search_progress_rejects_malformed_records(bad, message):
    with pytest.raises(ValueError, match=message):
        plot_search_progress(bad)


def test_funnel_rejects_missing_stages():
    with pytest.raises(ValueError, match="mos"):
        plot_funnel({"generated": 10, "cpv": 5, "proxy": 1})


def test_cli_plot_writes_a_png(tmp_path, capsys):
    path = tmp_path / "focal.png"
    code = main(["plot", KNOWN_LOSSES["focal"].formula, "--form", "sigmoid", "-o", str(path), "--baseline", "bce",
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    report = json.loads(out)
    assert report["path"] == str(path) and report["baselines"] == ["bce"]
    assert_png(path)


@pytest.mark.parametrize("argv, message", [
    (["plot", "1 - i/u", "--form", "reg", "-o", "/dev/null/iou.png"], "cannot write"),
    (["plot", "-log(sigmoid(x))", "--form", "sigmoid", "-o", "x.png", "--baseline", "giou"], "not sigmoid-form"),
    (["plot", "1 - i/u", "-o", "x.png"], "--form"),
])
def test_cli_plot_usage_errors_exit_2(tmp_path, capsys, argv, message):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and message in err


HEADLESS_SCRIPT = """
import sys
from autoloss.plots import plot_funnel, plot_loss, plot_search_progress
from symbolic.zoo import KNOWN_LOSSES

out = sys.argv[1]
for name in ("bce", "ce", "giou"):
    plot_loss(KNOWN_LOSSES[name].candidate, path=f"{out}/{name}.png")
plot_search_progress([{"generation": 0, "proxy_aps": [0.1, 0.2]}], path=f"{out}/progress.png")
plot_funnel({"generated": 10, "cpv": 3, "mos": 2, "proxy": 1}, path=f"{out}/funnel.png")
assert "matplotlib.pyplot" not in sys.modules, "a plot imported pyplot"
"""


def test_plots_need_no_display_and_never_import_pyplot(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    done = subprocess.run([sys.executable, "-c", HEADLESS_SCRIPT, str(tmp_path)], env={**env, "MPLBACKEND": "TkAgg"},
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("bce", "ce", "giou", "progress", "funnel"):
        assert_png(tmp_path / f"{name}.png")


def test_cli_plot_an_unknown_baseline_exits_2(tmp_path, capsys):
    assert main(["plot", "bce", "-o", str(tmp_path / "x.png"), "--baseline", "nope"]) == 2
    assert "unknown loss 'nope'" in capsys.readouterr().err
