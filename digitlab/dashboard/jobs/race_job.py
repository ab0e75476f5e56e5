"""Following a race: its runs, one trainer each (TrainingJobs started here, or AdoptedJobs after a restart), and the
study that stores it. A race runs until its last run has ended; Stop ends every run, and the ones still waiting for
a trainer never start."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from digitlab import study
from digitlab.dashboard.access import writable
from digitlab.dashboard.jobs.follow import STOP_GRACE_S, Job
from digitlab.dashboard.jobs.study_job import StoredStudy


class RaceJob(StoredStudy):
    """A race between its start and the end of its last run. ``lanes`` are filled by the coordinator once it has
    stored the race's definition; until then the race holds the server with none."""

    def __init__(self, spec: study.StudySpec, url: str, owner: str = "", stop_grace_s: float = STOP_GRACE_S):
        super().__init__(spec, url)
        self.owner, self.stop_grace_s = owner, stop_grace_s
        self.started_at = time.time()
        self.lanes: list[Job] = []
        self.on_finished: Callable[[], None] | None = None

    @property
    def key(self) -> str:
        """Tells one race from another (and from runs) by when and by whom it was started, hashed, as job_key does:
        the feed is readable by whoever reaches the server."""
        return hashlib.sha256(f"race/{self.started_at!r}/{self.owner}".encode()).hexdigest()[:16]

    @property
    def running(self) -> bool:
        return not self.lanes or any(lane.running for lane in self.lanes)

    @property
    def workers(self) -> int:
        return len(self.lanes)

    @property
    def stop_requested(self) -> bool:
        return bool(self.lanes) and all(lane.snapshot().stop_requested or not lane.running for lane in self.lanes)

    @writable("Stopping a race")
    def stop(self) -> None:
        """Stop every run: those training stop before their next batch, those waiting for a trainer never start."""
        for lane in self.lanes:
            if lane.running:
                lane.stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every run has ended; True if they have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for lane in self.lanes:
            if not lane.join(None if deadline is None else max(0.0, deadline - time.monotonic())):
                return False
        return True

    def ordered(self) -> list[tuple[Job, Any]]:
        """Its runs with their snapshots, in the order of the race's definition: a run learns which configuration
        it trains only when it starts, so the runs' own order is the order they were started in."""
        planned = [config["name"] for config in self.spec.grid[study.CONFIG_PARAM]]

        def place(pair) -> int:
            label = pair[1].config.name.removeprefix(f"{self.spec.name}: ")
            return planned.index(label) if label in planned else len(planned)

        return sorted(((lane, lane.snapshot()) for lane in self.lanes), key=place)

    def snapshots(self) -> list[Any]:
        """Its runs' snapshots, in the order of the race's definition."""
        return [snap for _, snap in self.ordered()]

    def run_ids(self) -> list[str]:
        return [snap.run_id for snap in self.snapshots() if snap.run_id]

    def failure(self) -> str | None:
        """A race does not fail as a whole: each of its runs says how it ended."""
        return None

    def lane_finished(self) -> None:
        """A run of the race has ended: once the last has, the race has."""
        if not self.running and self.on_finished is not None:
            self.on_finished()
