import pytest

from digitlab.dashboard import charts


def test_ema_smooths_and_starts_unbiased():
    assert charts.ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])
    smoothed = charts.ema([0.0, 10.0, 0.0, 10.0], 0.5)
    assert smoothed[0] == 0 and 0 < smoothed[-1] < 10
    assert charts.ema([3.0, 4.0], 0.0) == [3.0, 4.0]


def test_live_figures_keep_zoom_across_refreshes():
    loss = charts.batch_loss_figure([0.1, 0.2, 0.3], [2.0, 1.0, 0.5])
    assert loss.layout.uirevision and len(loss.data) == 2
    again = charts.batch_loss_figure([0.1, 0.2, 0.3, 0.4], [2.0, 1.0, 0.5, 0.4])
    assert again.layout.uirevision == loss.layout.uirevision
    assert tuple(charts.batch_loss_figure([0.1], [2.0], x_max=3).layout.xaxis.range) == (0, 3)
    curves = [charts.Curve("held out", "#000", [0.5, 1.0], [0.9, 0.95]),
              charts.Curve("test set", "#111", [1], [0.95], "points")]
    acc = charts.epoch_axis_figure(curves, "Accuracy", "Accuracy", x_max=5, percent=True)
    assert [t.name for t in acc.data] == ["held out", "test set"] and list(acc.data[1].y) == [0.95]
    assert acc.data[0].mode == "lines" and acc.data[1].mode == "markers"
    assert tuple(acc.layout.xaxis.range) == (0, 5) and acc.layout.yaxis.tickformat == ".1%"
    assert not acc.layout.annotations
    empty = charts.epoch_axis_figure([charts.Curve("held out", "#000", [], [])], "Loss", "x", 3, waiting="soon")
    assert empty.layout.annotations[0].text == "soon"  # an empty chart says when it fills


def test_confusion_figure_has_clickable_cells_and_counts():
    confusion = [[5 if t == p else (2 if (t, p) == (3, 5) else 0) for p in range(10)] for t in range(10)]
    fig = charts.confusion_figure(confusion, selected=(3, 5))
    cells = [t for t in fig.data if t.type == "scatter"][0]
    assert len(cells.x) == 100
    assert cells.marker.opacity > 0  # opacity 0 would make the cells unclickable
    i = list(zip(cells.y, cells.x)).index((3, 5))
    assert cells.text[i] == "2"
    off_diagonal = fig.data[1].z
    assert off_diagonal[3][5] == 2 and off_diagonal[3][3] is None and off_diagonal[0][1] is None
    assert fig.layout.shapes  # the selected cell is outlined


def test_probability_and_per_class_figures():
    fig = charts.probability_figure([0.05] * 9 + [0.55], "cnn")
    assert list(fig.data[0].x) == list(range(10))
    assert fig.data[0].marker.color[9] != fig.data[0].marker.color[0]
    per_class = charts.per_class_figure([0.99] * 9 + [0.9])
    assert per_class.data[0].marker.color[9] == charts.PALETTE[3]


def test_probability_bars_stand_out_where_the_model_says_and_escape_titles():
    probs = [0.02] * 10
    probs[3] = 0.82
    shown = charts.probability_bars_html([("<b>cnn</b>: 3 (82%)", probs, "#123456"), ("mlp", probs[::-1], "#654321")])
    assert shown.count("data-testid='draw-bars'") == 2 and "repeat(2," in shown
    assert "&lt;b&gt;cnn&lt;/b&gt;" in shown and "<b>cnn" not in shown
    first, second = shown.split("data-testid='draw-bars'")[1:]
    assert first.count("#123456") == 1 and "title='3: 82.0%'" in first  # the 3 in the model's colour
    assert second.count("#654321") == 1 and "title='6: 82.0%'" in second
    tall, short = (round(p * charts.PROBABILITY_BAR_PX) for p in (0.82, 0.02))
    assert f"height:{tall}px" in first and f"height:{short}px" in first
    assert "repeat(1," in charts.probability_bars_html([("alone", probs, "#123456")])


def test_small_multiples_has_one_panel_per_run():
    series = [charts.Series("train", "#000", [1, 2], [0.9, 0.95]), charts.Series("test", "#111", [1, 2], [0.9, 0.9])]
    fig = charts.small_multiples_figure([("a", series), ("b", series), ("c", series), ("d", series)], "Epoch", "Acc")
    assert len(fig.data) == 8
    assert [a.text for a in fig.layout.annotations][:4] == ["a", "b", "c", "d"]
    assert sum(t.showlegend for t in fig.data) == 2


def test_a_group_figure_bands_repeats_and_leaves_a_single_run_single():
    from digitlab.dashboard.charts import GroupSeries, group_figure

    repeats = GroupSeries("fast (n=2)", "#4C78A8", [1, 2], [0.9, 0.95], [0.01, 0.02], [([1, 2], [0.89, 0.93]),
                                                                                      ([1, 2], [0.91, 0.97])])
    single = GroupSeries("cnn (n=1)", "#F58518", [1, 2], [0.8, 0.85], [None, None], [([1, 2], [0.8, 0.85])])
    one_epoch = GroupSeries("one (n=2)", "#54A24B", [1], [0.7], [0.05], [([1], [0.65]), ([1], [0.75])])
    fig = group_figure([repeats, single, one_epoch], "Test accuracy", "Epoch", "Accuracy", percent=True)
    shown = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in shown] == ["fast (n=2)", "cnn (n=1)", "one (n=2)"]
    bands = [t for t in fig.data if t.fill == "tonexty"]
    assert len(bands) == 2 and bands[0].fillcolor == "rgba(76,120,168,0.22)"
    assert list(bands[0].y) == pytest.approx([0.89, 0.93])  # mean - std, filled up to the trace before it:
    assert list(fig.data[list(fig.data).index(bands[0]) - 1].y) == pytest.approx([0.91, 0.97])  # mean + std
    assert shown[2].error_y.array == (0.05,) and shown[0].error_y.array is None
    assert len([t for t in fig.data if t.opacity == 0.35]) == 5  # every run, faint, behind its group


def test_the_embedding_map_names_each_class_at_its_median_point_and_rings_misread_images():
    from digitlab.dashboard.charts import embedding_figure

    xy = [(0.0, 0.0), (1.0, 1.0), (2.0, 0.5), (10.0, 10.0), (11.0, 12.0)]
    labels, predicted = [3, 3, 3, 8, 8], [3, 3, 5, 8, 8]
    figure = embedding_figure(xy, labels, predicted, here=(1.5, 1.5), title="map")
    names = {a.text: (a.x, a.y) for a in figure.layout.annotations}
    assert names == {"<b>3</b>": (1.0, 0.5), "<b>8</b>": (10.5, 11.0)}
    misread = next(t for t in figure.data if t.name == "misread")
    assert list(misread.x) == [2.0] and list(misread.y) == [0.5]
    assert [t.name for t in figure.data if t.name == "this input"] == ["this input"]
    assert figure.layout.showlegend is False


def test_long_curves_are_thinned_and_lose_their_markers_short_ones_are_drawn_as_they_are():
    """What the browser draws: a 100-epoch curve has no marker per epoch (an SVG node each, merged into a thick
    line), a 2,000-batch curve at most CHART_POINTS points, averaged; a 5-epoch curve is drawn point for point."""
    epochs = list(range(1, 101))
    batches = [i / 20 for i in range(2000)]
    runs = [charts.Series("long", "#000", epochs, [e / 100 for e in epochs], markers=True),
            charts.Series("batches", "#111", batches, [1 / (1 + b) for b in batches]),
            charts.Series("short", "#222", [1, 2, 3, 4, 5], [0.9, 0.95, 0.96, 0.97, 0.98], markers=True)]
    for fig in (charts.overlay_figure(runs, "t", "x", "y"),
                charts.small_multiples_figure([("a", runs[:2]), ("b", runs[2:])], "x", "y")):
        long, thinned, short = fig.data
        assert long.mode == "lines" and len(long.x) == 100
        assert thinned.mode == "lines" and len(thinned.x) <= charts.CHART_POINTS < 2000
        assert thinned.x[0] == pytest.approx(sum(batches[:4]) / 4) and thinned.y[-1] < thinned.y[0]
        assert short.mode == "lines+markers" and list(short.y) == [0.9, 0.95, 0.96, 0.97, 0.98]
    # A group: its mean, its band and its faint runs, the same way.
    x = batches
    group = charts.GroupSeries("g (n=2)", "#333333", x, [0.9] * 2000, [0.01] * 2000, [(x, [0.89] * 2000),
                                                                                   (x, [0.91] * 2000)])
    fig = charts.group_figure([group], "t", "x", "y")
    assert all(len(trace.x) <= charts.CHART_POINTS and trace.mode == "lines" for trace in fig.data)
    short = charts.GroupSeries("s (n=2)", "#333333", [1, 2], [0.9, 0.95], [0.01, 0.02], [([1, 2], [0.89, 0.93])])
    assert charts.group_figure([short], "t", "x", "y").data[-1].mode == "lines+markers"
