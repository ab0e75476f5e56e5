"""The Errors page's gallery: each misread test image as a card, and a dialog with it larger and its ten
probabilities."""

from __future__ import annotations

import streamlit as st
import torch

from digitlab.dashboard import charts
from digitlab.dashboard.images import digit_png, error_card_html
from digitlab.dashboard.mistakes import top_k
from digitlab.predict import RunPredictions

PER_ROW = 6


@st.dialog("Test image", width="large")
def inspect(index: int, preds: RunPredictions, test_images: torch.Tensor, run_id: str) -> None:
    image_col, bars_col = st.columns([1, 2])
    image_col.image(digit_png(test_images[index], scale=10), width="stretch")
    image_col.markdown(f"Test image **#{index}**  \ntrue **{preds.labels[index].item()}**, predicted "
                       f"**{preds.predicted[index].item()}** ({preds.confidence[index].item():.1%})")
    image_col.page_link("pages/inside.py", label="Look inside", icon=":material/visibility:",
                        query_params={"test": str(index), "run": run_id})
    bars_col.plotly_chart(charts.probability_figure(preds.probs[index].tolist(), height=320),
                          key=f"errors.dialog.{index}", config={"displayModeBar": False})


def gallery(indices: list[int], preds: RunPredictions, test_images: torch.Tensor, run_id: str) -> None:
    """The cards of the test images ``indices``, as ``run_id``'s predictions ``preds`` read them."""
    for row_start in range(0, len(indices), PER_ROW):
        for column, index in zip(st.columns(PER_ROW), indices[row_start : row_start + PER_ROW]):
            with column.container(border=True):
                st.html(error_card_html(test_images[index], preds.labels[index].item(),
                                        preds.predicted[index].item(), preds.confidence[index].item(),
                                        top_k(preds.probs[index])))
                if st.button(f"#{index}", key=f"errors.inspect.{index}", width="stretch",
                             help="Show it larger with all 10 probabilities"):
                    inspect(index, preds, test_images, run_id)
