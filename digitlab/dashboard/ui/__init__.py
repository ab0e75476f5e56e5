"""The dashboard's Streamlit code, the only part of digitlab that imports streamlit, by subject:

- ``bootstrap``: what every page does first (the app's navigation, Streamlit settings, the chart code prefetch);
- ``loaders``: cached loaders (the run store, the server's jobs, MNIST, models, predictions, drawings);
- ``actions``: what changes state, refused in read-only mode, and the controls that ask for it;
- ``widgets``: run labels and pickers, a pager, field errors, the runs a page shows;
- ``handoff``: opening another page with something to show;
- the views of one page or feature each: ``train_form``, ``train_live``, ``live_chart``, ``inside_views``,
  ``inside_computations``, ``robustness_views``, ``run_management``.
"""
