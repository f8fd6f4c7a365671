"""What every figure gets before it is saved: integer ticks, log floors, GD beneath SGD, legends
moved off the data (dlncheck.report.figure_finish, through save_figure)."""

import numpy as np

from dlncheck.report import plots
from dlncheck.report.figure_files import save_figure
from dlncheck.report.figure_finish import EPS, GD_ZORDER


def test_integer_axes_get_whole_number_ticks(tmp_path):
    fig, (seeds, values) = plots.figure(1, 2)
    seeds.bar(np.arange(10), np.where(np.arange(10) % 3 == 0, -1, 1))
    values.plot([0.0, 0.5, 1.0], [0.1, 0.7, 0.2])
    save_figure(fig, tmp_path / "f.png")
    for ticks in (seeds.get_xticks(), seeds.get_yticks()):
        assert np.all(ticks == np.round(ticks))
    assert not np.all(values.get_yticks() == np.round(values.get_yticks()))  # continuous data keep theirs


def test_log_axis_is_cut_at_round_off_and_says_so(tmp_path):
    fig, ax = plots.figure()
    ax.semilogy([0, 1, 2, 3], [1e14, 1e3, 1e-100, 1e-314])
    ax.set_ylabel("sigma_min")
    save_figure(fig, tmp_path / "f.png")
    assert np.isclose(ax.get_ylim()[0], EPS * 1e14)
    assert "round-off" in ax.get_ylabel() and ax.get_ylabel().startswith("sigma_min")
    fig, ax = plots.figure()
    ax.semilogy([0, 1], [1.0, 1e-6])
    save_figure(fig, tmp_path / "g.png")
    assert ax.get_ylim()[0] < 1e-6 and "round-off" not in ax.get_ylabel()


def test_gd_is_drawn_beneath_sgd_with_the_distance_in_its_legend_entry(tmp_path):
    fig, ax = plots.figure()
    t = np.linspace(0, 1, 50)
    ax.plot(t, np.exp(-t) * (1 + 1e-3), color=plots.SGD_COLOR, label="SGD")
    gd = ax.plot(t, np.exp(-t), color=plots.GD_COLOR, label="GD")[0]
    ax.legend()
    save_figure(fig, tmp_path / "f.png")
    assert gd.get_zorder() == GD_ZORDER < ax.get_lines()[0].get_zorder()
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[1].startswith("GD (others within 0.001")


def test_a_legend_over_the_data_moves_out_of_the_axes(tmp_path):
    fig, ax = plots.figure()
    x = np.linspace(0, 1, 200)
    for k in range(8):
        ax.plot(x, np.full_like(x, k / 7), label=f"init {k}")  # horizontal lines fill the axes
    ax.legend(loc="upper right")
    empty_fig, empty_ax = plots.figure()
    empty_ax.plot(x, x**8, label="x^8")  # the upper left corner is empty
    empty_ax.legend(loc="upper left")
    save_figure(fig, tmp_path / "f.png")
    save_figure(empty_fig, tmp_path / "g.png")
    renderer = fig.canvas.get_renderer()
    assert ax.get_legend().get_window_extent(renderer).x0 > ax.bbox.x1  # beside the axes now
    kept = empty_ax.get_legend().get_window_extent(empty_fig.canvas.get_renderer())
    assert empty_ax.bbox.contains(kept.x0 + 1, kept.y0 + 1)  # in place: it covers nothing


def test_per_init_lines_are_named_or_the_worst_is_highlighted_and_named():
    x = np.arange(5.0)
    fig, ax = plots.figure()
    plots.per_init_lines(ax, [(x, x + k) for k in range(3)], ["a#0", "a#1", "b#0"], worst="a#1")
    assert ax.get_legend_handles_labels()[1] == ["a#0", "b#0", "worst: a#1"]
    fig, ax = plots.figure()
    names = [f"gaussian#{k}" for k in range(12)]
    plots.per_init_lines(ax, [(x, x + k) for k in range(12)], names, worst="gaussian#2", what="mean, ")
    handles, labels = ax.get_legend_handles_labels()
    assert labels == ["mean, other inits (11)", "mean, worst: gaussian#2"]
    assert handles[1].get_color() == plots.WORST_COLOR and handles[1].get_zorder() > handles[0].get_zorder()
    np.testing.assert_array_equal(handles[1].get_ydata(), x + 2)


def test_a_constant_integer_line_gets_one_whole_tick_and_twin_axes_count_as_data(tmp_path):
    fig, ax = plots.figure()
    ax.plot([0.0, 0.5, 1.0], [4, 4, 4])
    save_figure(fig, tmp_path / "f.png")
    visible = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
    assert visible == [4]
    fig, ax = plots.figure()
    ax.plot([0, 1], [0, 0], label="flat")  # nothing of ax under its upper-left legend ...
    ax.legend(loc="upper left")
    ax.twinx().plot(np.linspace(0, 1, 50), np.linspace(1, 0, 50))  # ... but the twin's line starts there
    save_figure(fig, tmp_path / "g.png")
    assert ax.get_legend().get_window_extent(fig.canvas.get_renderer()).x0 > ax.bbox.x1
