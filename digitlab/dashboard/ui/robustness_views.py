"""The robustness lab's views: the Inside page's Perturb and Adversarial tabs, and Compare's corruption benchmark
column and chart. Computations are cached across reruns by run path and weights stamp; the slow ones (the
accuracy-against-ε curve, the corruption benchmark) run once per run under a progress bar, from a button that
read-only mode disables."""

from __future__ import annotations

import streamlit as st
import torch

from digitlab import robustness
from digitlab.dashboard.ui import actions, loaders, widgets
from digitlab.dashboard.access import writable
from digitlab.dashboard.charts import colour_for
from digitlab.dashboard.images import images_grid_png, kernel_grid_png, pixels_png
from digitlab.dashboard.robustness_figures import (
    CurveLine,
    SweepLine,
    corruption_figure,
    epsilon_figure,
    sweep_figure,
    with_corrupted_means,
    worst_corruptions,
)
from digitlab.dashboard.text import markdown_literal, shorten
from digitlab.dashboard.ui.inside_computations import progress_bar
from digitlab.data import DataNotFoundError
from digitlab.store import RunError, RunRecord

PER_ROW = 4
ATTACK_CHOICES = {"fgsm": "FGSM", "pgd": "PGD (10 steps)"}


def _name(record: RunRecord) -> str:
    return shorten(record.name)


# --- Perturb ---------------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def _perturbed(image_bytes: bytes, transform: str, low: float, high: float) -> tuple[torch.Tensor, torch.Tensor]:
    values = robustness.sweep_values(transform, low, high)
    return values, robustness.perturb(loaders.image_from_bytes(image_bytes), transform, values)


@st.cache_data(show_spinner=False, max_entries=256)
def _sweep(path: str, stamp: float, image_bytes: bytes, transform: str, low: float, high: float) -> robustness.Sweep:
    values, images = _perturbed(image_bytes, transform, low, high)
    return robustness.sweep(loaders.loaded_run(path, stamp), images, values)


@st.cache_data(show_spinner=False, max_entries=256)
def _answer(path: str, stamp: float, image_bytes: bytes) -> torch.Tensor:
    """(10,) probabilities of the image as it is."""
    return robustness.probabilities(loaders.loaded_run(path, stamp), loaders.image_from_bytes(image_bytes)[None])[0]


def _range_inputs(transform: robustness.Transform) -> tuple[float, float, dict[str, str]]:
    step = 0.05 if transform.high - transform.low <= 4 else 1.0
    low_col, high_col = st.columns(2)
    low = low_col.number_input(f"From ({transform.unit.strip()})", value=transform.low, step=step,
                               key=f"inside.perturb.low.{transform.name}")
    high = high_col.number_input(f"To ({transform.unit.strip()})", value=transform.high, step=step,
                                 key=f"inside.perturb.high.{transform.name}")
    errors = robustness.sweep_errors(transform.name, low, high)
    with low_col:
        widgets.field_error(errors, "low")
    with high_col:
        widgets.field_error(errors, "high")
    return low, high, errors


def perturb_tab(records: list[RunRecord], image01: torch.Tensor, label: int | None) -> None:
    """Sweep one transformation over the image; one confidence curve per model, a ring where its answer changes.
    ``label``: the image's true digit (a test image), or None (a drawing: each model is judged on its own answer to
    the image as it is)."""
    controls, strip = st.columns([1, 3], gap="large")
    with controls:
        name = st.selectbox("Transformation", list(robustness.TRANSFORMS),
                            format_func=lambda t: robustness.TRANSFORMS[t].label, key="inside.perturb.transform")
        transform = robustness.TRANSFORMS[name]
        low, high, errors = _range_inputs(transform)
    if errors:
        return
    image_bytes = loaders.image_bytes(image01)
    values, images = _perturbed(image_bytes, name, low, high)
    with strip:
        st.image(images_grid_png(images, columns=13, cell=56), width="stretch",
                 caption=f"{transform.label} from {transform.describe(values[0].item())} to "
                         f"{transform.describe(values[-1].item())}, {len(values)} steps, left to right, row by row")
    lines, notes = [], []
    for i, record in enumerate(records):
        try:
            swept = _sweep(*loaders.run_cache_key(record), image_bytes, name, low, high)
            digit = label if label is not None else int(_answer(*loaders.run_cache_key(record), image_bytes).argmax())
        except RunError as err:  # its weights went bad since the listing: the other models still show
            st.error(f"Cannot sweep **{markdown_literal(_name(record))}**: {markdown_literal(str(err))}")
            continue
        predicted = swept.predicted.tolist()
        lines.append(SweepLine(_name(record), colour_for(i), digit, swept.confidence(digit).tolist(), predicted,
                               swept.changes()))
        changes = ", ".join(f"{transform.describe(values[j].item())} → {predicted[j]}" for j in swept.changes())
        notes.append(f"**{markdown_literal(_name(record))}**: " + (f"says {predicted[0]} at first; {changes}"
                                                                  if changes else f"says {predicted[0]} throughout"))
    if not lines:
        return
    judged_on = f"the true digit, {label}" if label is not None else "each model's answer to the drawing as drawn"
    st.plotly_chart(sweep_figure(values.tolist(), lines, f"{transform.label} ({transform.unit.strip()})",
                                 transform.identity, judged_on), key="inside.perturb.chart")
    st.caption(" · ".join(notes))


# --- Adversarial -----------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def _attacked(path: str, stamp: float, image_bytes: bytes, target: int, epsilon: float, method: str
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(the adversarial image (28, 28), its probabilities (10,))."""
    run = loaders.loaded_run(path, stamp)
    adversarial = robustness.attack(run, loaders.image_from_bytes(image_bytes)[None], torch.tensor([target]), epsilon, method)
    return adversarial[0], robustness.probabilities(run, adversarial)[0]


def adversarial_tab(records: list[RunRecord], image01: torch.Tensor, label: int | None) -> None:
    """The image attacked within ε for each model: the perturbation, the adversarial image and the new answer; then
    each model's accuracy against ε on the fixed test subset."""
    method_col, epsilon_col = st.columns([1, 2], gap="large")
    method = method_col.radio("Attack", list(ATTACK_CHOICES), format_func=ATTACK_CHOICES.get, horizontal=True,
                              key="inside.adversarial.method",
                              help="FGSM: one step of ε in the direction that raises the loss most. PGD: ten steps "
                                   "of ε/4 from a random start, kept within ε of the image.")
    epsilon = epsilon_col.slider("ε: how far any pixel may move (0..1 scale)", 0.0, robustness.EPSILON_MAX, 0.1,
                                 0.01, key="inside.adversarial.epsilon")
    if (message := robustness.epsilon_error(epsilon)) is not None:
        widgets.field_error({"epsilon": message}, "epsilon")
        return
    image_bytes = loaders.image_bytes(image01)
    for start in range(0, len(records), PER_ROW):
        for column, record in zip(st.columns(PER_ROW), records[start : start + PER_ROW]):
            with column.container(key=f"inside.adversarial.model.{record.id}"):
                _attacked_column(record, image_bytes, image01, label, epsilon, method)
    _epsilon_curves(records, method, epsilon)


def _attacked_column(record: RunRecord, image_bytes: bytes, image01: torch.Tensor, label: int | None,
                     epsilon: float, method: str) -> None:
    name = _name(record)
    st.markdown(f"#### {markdown_literal(name)}")
    try:
        before = _answer(*loaders.run_cache_key(record), image_bytes)
        target = label if label is not None else int(before.argmax())
        adversarial, after = _attacked(*loaders.run_cache_key(record), image_bytes, target, epsilon, method)
    except RunError as err:
        st.error(f"Cannot attack **{markdown_literal(name)}**: {markdown_literal(str(err))}")
        return
    was, now = int(before.argmax()), int(after.argmax())
    verdict = "still says" if now == was else ":red[now says]"
    st.markdown(f"said **{was}** ({before[was].item():.0%}) · {verdict} **{now}** ({after[now].item():.0%})",
                help=f"Attacked away from {target}" + (" (the true digit)" if label is not None else
                                                       " (its answer to the drawing)"))
    perturbation, picture = st.columns(2)
    delta = adversarial - image01
    perturbation.image(kernel_grid_png(delta[None], columns=1, cell=224), width="stretch",
                       caption="Change: red up, blue down")
    picture.image(pixels_png(adversarial), width="stretch", caption=f"Attacked, ε = {epsilon:.2f}")


def _curve(record: RunRecord) -> robustness.AttackCurve | None:
    return robustness.adversarial_curve_cached(loaders.loaded_run_for(record), loaders.mnist())


def _epsilon_curves(records: list[RunRecord], method: str, epsilon: float) -> None:
    try:
        curves = {}
        for record in records:
            try:
                curves[record.id] = _curve(record)
            except RunError:
                continue  # its column above says why
    except DataNotFoundError as err:
        st.warning(f"Accuracy against ε needs MNIST: {markdown_literal(str(err))}")
        return
    missing = [r for r in records if r.id in curves and curves[r.id] is None]
    done = [(i, r) for i, r in enumerate(records) if curves.get(r.id) is not None]
    if done:
        lines = [CurveLine(_name(r), colour_for(i), curves[r.id].accuracy[method]) for i, r in done]
        first = curves[done[0][1].id]
        st.plotly_chart(epsilon_figure(first.epsilons, lines, ATTACK_CHOICES[method], first.images, epsilon),
                        key="inside.adversarial.chart")
    if missing:
        names = ", ".join(_name(r) for r in missing)
        st.caption(f"**Accuracy against ε** is not computed yet for {markdown_literal(names)}: each model is "
                   f"attacked at "
                   f"{len(robustness.EPSILONS)} values of ε on {robustness.ATTACK_SUBSET:,} fixed test images by "
                   "each attack, once, and the result is kept beside the run. On a 2-core CPU that takes about a "
                   "minute for an MLP and several for a CNN.")
        if st.button(f"Compute for {len(missing)} model{'s' * (len(missing) > 1)}", icon=":material/play_arrow:",
                     key="inside.adversarial.compute", **actions.state_changing()):
            try:
                _attack_curves(missing)
            except actions.ACTION_ERRORS as err:
                st.error(markdown_literal(str(err)))
            else:
                st.rerun()


@writable("Computing accuracy against ε")
def _attack_curves(records: list[RunRecord]) -> None:
    """Each run's accuracy against ε, with a progress bar; kept in its cache."""
    for record in records:
        with progress_bar(f"Attacking {_name(record)}") as show:
            robustness.adversarial_curve(loaders.loaded_run_for(record), loaders.mnist(), show)


# --- Compare: the corruption benchmark -------------------------------------------------------------------------


@writable("Computing the corruption benchmark")
def _benchmark(records: list[RunRecord]) -> None:
    """Each run's corruption benchmark, with a progress bar; kept in its cache."""
    for record in records:
        with progress_bar(f"Corruption benchmark of {_name(record)}") as show:
            robustness.corruption_benchmark(loaders.loaded_run_for(record), loaders.mnist(), show)


def corrupted_means(records: list[RunRecord]) -> tuple[dict[str, robustness.CorruptionResult], str | None]:
    """The cached benchmark of each run that has one, and a message where none can be read (no MNIST)."""
    try:
        data = loaders.test_split()
    except DataNotFoundError as err:
        return {}, f"The corruption benchmark needs MNIST: {err}"
    results = {}
    for record in records:
        if not record.usable:
            continue
        try:
            found = robustness.benchmark_cached(loaders.loaded_run_for(record), data)
        except RunError:
            continue
        if found is not None:
            results[record.id] = found
    return results, None


def table_with_benchmark(table, results: dict[str, robustness.CorruptionResult]):
    return with_corrupted_means(table, {run_id: result.mean for run_id, result in results.items()})


def benchmark_action(records: list[RunRecord], results: dict[str, robustness.CorruptionResult],
                     problem: str | None, key: str) -> None:
    """Under Compare's table: which runs have no corrupted mean accuracy yet, and a button that computes it."""
    if problem is not None:
        st.caption(markdown_literal(problem))
        return
    missing = [r for r in records if r.usable and r.id not in results]
    if not missing:
        return
    text_col, button_col = st.columns([3, 1], vertical_alignment="center")
    text_col.caption(f"**Corrupted mean accuracy**: the mean over {len(robustness.CORRUPTIONS)} MNIST-C corruptions "
                     f"of the test set. Not computed yet for {len(missing)} run{'s' * (len(missing) > 1)} "
                     "(about a minute each, once).")
    if button_col.button("Compute", icon=":material/play_arrow:", key=key, width="stretch",
                         **actions.state_changing()):
        try:
            _benchmark(missing)
        except (*actions.ACTION_ERRORS, DataNotFoundError) as err:
            st.error(markdown_literal(str(err)))
        else:
            st.rerun()


def corruption_chart(records: list[RunRecord], results: dict[str, robustness.CorruptionResult],
                     colours: dict[str, str]) -> None:
    """Compare's bar chart per corruption for the selected runs that have been benchmarked."""
    shown = [(r, results[r.id]) for r in records if r.id in results]
    if not shown:
        st.caption("None of the selected runs has been benchmarked yet.")
        return
    st.plotly_chart(corruption_figure([(_name(r), colours[r.id], result) for r, result in shown]),
                    key="compare.chart.corruptions")
    worst = [f"**{markdown_literal(_name(r))}**: " + ", ".join(f"{label} {acc:.1%}" for label, acc in
                                                               worst_corruptions(result))
             for r, result in shown]
    st.caption("Hurt most: " + " · ".join(worst))
