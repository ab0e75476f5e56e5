"""The Inside view of one model: its answer, its attribution, its nearest training images, the test set as it sees
it, its feature maps and filters."""

from __future__ import annotations

import streamlit as st
import torch

from digitlab.dashboard import charts
from digitlab.dashboard.images import kernel_grid_png, map_grid_png, neighbours_html, overlay_png
from digitlab.dashboard.text import markdown_literal, shorten
from digitlab.dashboard.ui import inside_computations
from digitlab.dashboard.ui.loaders import mnist
from digitlab.data import DataNotFoundError
from digitlab.inside import AttributionError, empty_map_reason
from digitlab.store import RunError, RunRecord

METHOD_LABELS = {"saliency": "Saliency", "integrated_gradients": "Integrated gradients", "gradcam": "Grad-CAM",
                 "occlusion": "Occlusion"}


def model_column(record: RunRecord, image: torch.Tensor, method: str, show_all: bool) -> None:
    """Everything Inside shows of ``record`` looking at ``image`` ((28, 28) on 0..1), in the current column."""
    name = shorten(record.name)
    st.markdown(f"#### {markdown_literal(name)}")
    try:
        maps = inside_computations.feature_maps(record, image)
    except RunError as err:  # its weights went bad since the listing: the other columns still work
        st.error(f"Cannot look inside **{markdown_literal(name)}**: {markdown_literal(str(err))}")
        return
    probs = maps[-1].values
    digit = int(probs.argmax())
    st.markdown(f"says **{digit}** ({probs[digit].item():.0%})")
    try:
        attribution = inside_computations.attribution(record, image, method)
    except AttributionError as err:
        st.info(markdown_literal(str(err)))
    else:
        st.image(overlay_png(image, attribution), width="stretch", caption=f"{METHOD_LABELS[method]} for {digit}")
        if reason := empty_map_reason(method, attribution):
            st.caption(reason)
    st.markdown("**Nearest training images**")
    try:
        nearest = inside_computations.nearest(record, image)
        emap = inside_computations.embedding_map(record)
    except DataNotFoundError as err:
        st.warning(f"Needs MNIST: {markdown_literal(str(err))}")
    else:
        train = mnist().train_images
        st.html(neighbours_html([train[n.index] for n in nearest], [n.label for n in nearest],
                                [n.similarity for n in nearest], [n.index for n in nearest]))
        st.markdown("**The test images as it sees them**")
        st.plotly_chart(charts.embedding_figure(emap.xy.tolist(), emap.labels.tolist(), emap.predicted.tolist(),
                                                inside_computations.place(record, emap, image), height=300),
                        key=f"inside.map.{record.id}", config={"displayModeBar": False})
        st.caption("PCA of its penultimate-layer features; ringed: misread by it; ★: this input.")
    st.markdown("**Feature maps**")
    for fm in maps:
        st.caption(f"{fm.name} · {fm.kind} · {' × '.join(map(str, fm.shape))}")
        st.image(map_grid_png(fm.values, None if show_all else 16), width="stretch")
    with st.expander("Filters"):
        for kernels in inside_computations.filters(record):
            st.caption(f"{kernels.name} · {kernels.kernels.shape[0]} × {kernels.kernels.shape[1]} × "
                       f"{kernels.kernels.shape[2]}")
            st.image(kernel_grid_png(kernels.kernels, None if show_all else 16), width="stretch")
