"""The Class board, drawn again every BOARD_REFRESH_S by itself: an addition on any tab shows within about a second,
without a click. Each run reads only the drawings that are new, and predicts only those."""

from __future__ import annotations

import streamlit as st

from digitlab.dashboard.board import hardest, per_digit_figure
from digitlab.dashboard.drawings import drawing_card_html
from digitlab.dashboard.text import counted, markdown_literal, shorten
from digitlab.dashboard.ui import loaders
from digitlab.store import RunRecord

BOARD_REFRESH_S = 1.0
HARDEST = 12
PER_ROW = 6


@st.fragment(run_every=BOARD_REFRESH_S)
def board(models: list[RunRecord]) -> None:
    listing = loaders.drawings()
    drawings = listing.drawings
    scores = loaders.drawing_scores(models)
    names = {record.id: shorten(record.name) for record in models}
    st.caption(f"{counted(len(drawings), 'drawing')} from the class so far · updated live")
    if not drawings:
        st.info("No drawings yet. Everyone opens **Draw** on this server, draws a digit, picks its label and presses "
                "**Add to the class collection**: the board scores every model on them as they come.",
                icon=":material/draw:")
        return
    best_first = sorted(scores.items(), key=lambda item: item[1].accuracy or 0, reverse=True)
    for start in range(0, len(best_first), 4):
        for column, (run_id, result) in zip(st.columns(4), best_first[start : start + 4]):
            column.metric(markdown_literal(names[run_id]), f"{result.accuracy:.1%}",
                          help=f"{result.correct} of {result.count} of the class's drawings read right")
    st.plotly_chart(per_digit_figure(dict(best_first), names), key="board.per_digit",
                    config={"displayModeBar": False})
    missed = hardest(drawings, scores, HARDEST)
    st.subheader("The drawings most models get wrong")
    if not missed:
        st.caption("Every model reads every drawing right, so far.")
    for start in range(0, len(missed), PER_ROW):
        for column, drawing in zip(st.columns(PER_ROW), missed[start : start + PER_ROW]):
            with column.container(border=True):
                st.html(drawing_card_html(drawing, scores, names))
