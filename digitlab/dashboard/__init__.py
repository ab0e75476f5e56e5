"""The dashboard's own modules: figure builders, table shaping, form logic, HTML cards, the training job manager,
and (in ``ui/``) the only code that imports streamlit.

The library (``import digitlab``) never imports this package; the pages do, through it.
"""
