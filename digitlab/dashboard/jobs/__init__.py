"""The server's jobs: training runs and studies, each carried out by a trainer process of its own.

- ``child``: what runs inside the trainer process (getting ready, one order, reporting back);
- ``trainer``: the warm trainer's lifecycle, a process started before its order comes;
- ``follow`` and ``study_job``: following a run (started here or adopted after a restart) and a study;
- ``coordinator``: the one owner of every job of a server, under one lock, with a capacity and a queue.
"""
