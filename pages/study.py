"""Study: start a seed study or build one, follow its trials, stop it; after a search, its parameters' effects."""

import optuna
import streamlit as st

from digitlab import study
from digitlab.config import PRESETS
from digitlab.dashboard.ui import actions, bootstrap, handoff, loaders
from digitlab.dashboard.access import READ_ONLY_REASON, ReadOnlyError, read_only
from digitlab.dashboard.jobs.coordinator import BusyError
from digitlab.dashboard.study_figures import best_so_far_figure, study_run_ids, trials_table
from digitlab.dashboard.text import markdown_literal

bootstrap.use_app_navigation()
REFRESH_S = 1.0
jobs = loaders.coordinator()
jobs.warm_up()  # the study's first worker, ready for the click (started on a background thread)

st.title("Study")
st.caption("Many runs from one action: repeats over seeds, grids of values, or a search. Each trial is an ordinary "
           "run in the store, tagged with its study.")
if read_only():
    st.info(READ_ONLY_REASON, icon=":material/lock:")


def start(make) -> None:
    """Define the study with ``make()`` and start it; every refusal is shown, not raised."""
    try:
        jobs.start_study(make(), workers=int(st.session_state["study.workers"]))
    except (study.StudyError, BusyError, ReadOnlyError) as err:
        st.error(markdown_literal(str(err)))
    else:
        st.rerun()


with st.expander("Start a study", expanded=jobs.latest_study is None, icon=":material/play_arrow:"):
    seed_tab, build_tab = st.tabs(["Seed study", "Build one"])
    with seed_tab:
        seed = st.selectbox("Seed study", list(study.SEED_STUDIES), key="study.seed",
                            help="The seeds' comparisons, on their faithful presets.")
        columns = st.columns(2)
        repeats = columns[0].number_input("Seeds per configuration", 1, 20, study.SEED_STUDY_REPEATS,
                                          key="study.seed_repeats")
        epochs = columns[1].number_input("Epochs (0: the presets' own)", 0, 1000, 0, key="study.seed_epochs")
        if st.button("Start the seed study", key="study.start_seed", type="primary", **actions.state_changing()):
            start(lambda: study.define_study(seed, seed_study=seed, repeat=int(repeats), epochs=int(epochs) or None))
    with build_tab:
        name = st.text_input("Study name", key="study.name", placeholder="e.g. lr-sweep")
        base = st.selectbox("Base preset", list(PRESETS), key="study.base")
        grid = st.text_area("Grid: one FIELD=VALUES a line", key="study.grid",
                            placeholder="lr=0.001,0.01\nmodel_options.channels=[16,32];[32,64]")
        search = st.text_area("Or a search: one FIELD=SPEC a line", key="study.search",
                              placeholder="lr=1e-4:1e-1:log\nbatch_size=64,128,256")
        columns = st.columns(4)
        repeat = columns[0].number_input("Seeds", 1, 1000, 1, key="study.repeat")
        trials = columns[1].number_input("Search trials", 1, study.MAX_TRIALS, study.DEFAULT_SEARCH_TRIALS,
                                         key="study.trials")
        build_epochs = columns[2].number_input("Epochs (0: the preset's)", 0, 1000, 0, key="study.epochs")
        validation = columns[3].number_input("Validation images", 0, 30000, study.DEFAULT_VALIDATION_SIZE, 1000,
                                             key="study.validation")
        prune = st.checkbox("Prune weak search trials on validation accuracy", key="study.prune")

        def built() -> study.StudySpec:
            searched = study.parse_search(search)
            return study.define_study(
                name, base, repeat=int(repeat), prune=prune, epochs=int(build_epochs) or None,
                validation_size=int(validation), trials=int(trials) if searched else None,
                grid=study.parse_grid(grid), search=searched)

        if st.button("Start the study", key="study.start_built", type="primary", **actions.state_changing()):
            start(built)
    st.number_input("Worker processes", 1, 16, study.DEFAULT_WORKERS, key="study.workers",
                    help="Each takes trials in turn; the cores are shared out between them.")

job = jobs.latest_study
polling = job is not None and job.running


@st.fragment(run_every=REFRESH_S if polling else None)
def follow() -> study.Summary | None:
    job = jobs.latest_study
    if job is None:
        st.info("Start a study above; its trials will show here as they run.")
        return None
    if job.running != polling:
        st.rerun()  # started or ended since the page ran: switch polling on or off
    spec = job.spec
    found, summary = job.read_trials()
    st.subheader(f"{markdown_literal(spec.name)} · {spec.kind}")
    if job.running:
        bar, stop = st.columns([4, 1], vertical_alignment="bottom")
        text = "Stopping every worker after its current batch..." if job.stop_requested else \
            f"{summary.ended} of {spec.total} trials ended · {job.workers} worker(s)"
        bar.progress(summary.ended / spec.total, text=text)
        if stop.button("Stop", icon=":material/stop:", key="study.stop", width="stretch",
                       **actions.state_changing(disabled=job.stop_requested)):
            try:
                job.stop()
            except ReadOnlyError as err:
                st.error(str(err))
    elif failure := job.failure():
        st.error(markdown_literal(failure))
    st.caption(markdown_literal(summary.line()))
    st.dataframe(trials_table(summary), hide_index=True, key="study.table")
    st.plotly_chart(best_so_far_figure(summary), key="study.best")
    if not job.running and spec.search and summary.count("complete") >= 2:
        st.plotly_chart(optuna.visualization.plot_parallel_coordinate(found), key="study.parallel")
        try:
            # PED-ANOVA needs no scikit-learn (fANOVA, the default, does).
            importances = optuna.visualization.plot_param_importances(
                found, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
        except (ValueError, RuntimeError) as err:
            st.caption(f"Parameter importances need more varied complete trials ({err}).")
        else:
            st.plotly_chart(importances, key="study.importances")
    return summary


summary = follow()  # on the page's run (not on the fragment's own reruns): the summary it drew
# Drawn by the page's run, not by the polling fragment: the study's end reruns the page anyway. A click on a button
# in that fragment was lost about once in 30 study ends on a loaded machine; a click here asks for a full-page run,
# which Streamlit folds any fragment run still queued into, never the other way round.
run_ids = [] if polling or summary is None else study_run_ids(summary)
if run_ids and st.button("Compare the study's runs, grouped →", key="study.compare"):
    handoff.open_compare(run_ids, grouped=True)
