"""Studies: many runs from one definition, on Optuna. Each trial trains an ordinary run of the run store, tagged with
its study and trial number (run.json's ``study``).

- spec: what a study runs (repeat, grid or search), checked by define_study; the CLI's and the page's grid and
  search text.
- storage: the study database (SQLite inside the run store by default, PostgreSQL for many machines).
- attempts: which configuration each trial tries: a grid's combinations run exactly once however many workers share
  the study, a trial whose worker died is tried once more.
- trials: the objective, one trial as one run, and ``work``, a worker's loop.
- runner: a whole study with this process and spawned workers.
- race: several configurations trained at the same time, one worker each, stored as a study.
- summary: each configuration's last attempt, the best, and a table.
"""

from digitlab.study.race import MAX_LANES, MIN_LANES, define_race, waiting_configs
from digitlab.study.runner import DEFAULT_WORKERS, run_study, spawn_workers, wait_for_workers
from digitlab.study.spec import (CONFIG_PARAM, DEFAULT_SEARCH_TRIALS, DEFAULT_VALIDATION_SIZE, MAX_TRIALS, SEED_STUDIES,
                                 SEED_STUDY_REPEATS, StudyError, StudySpec, define_study, parse_assignments,
                                 parse_grid, parse_search, parse_spec, parse_values)
from digitlab.study.storage import (STUDIES_FILE, create_or_resume, list_studies, load_study, open_storage,
                                    storage_url)
from digitlab.study.summary import Summary, TrialRow, format_table, show, summarize
from digitlab.study.trials import RESULT_ATTRS, work

__all__ = ["CONFIG_PARAM", "DEFAULT_SEARCH_TRIALS", "DEFAULT_VALIDATION_SIZE", "DEFAULT_WORKERS", "MAX_LANES",
           "MAX_TRIALS", "MIN_LANES", "RESULT_ATTRS", "SEED_STUDIES", "SEED_STUDY_REPEATS", "STUDIES_FILE",
           "StudyError", "StudySpec", "Summary", "TrialRow", "create_or_resume", "define_race", "define_study",
           "format_table", "list_studies", "load_study", "open_storage", "parse_assignments", "parse_grid",
           "parse_search", "parse_spec", "parse_values", "run_study", "show", "spawn_workers", "storage_url",
           "summarize", "wait_for_workers", "waiting_configs", "work"]
