"""A light client for load tests: one Streamlit session driven over Streamlit's own websocket protocol (the protobuf
messages its frontend exchanges with the server), without a browser.

The server cannot tell it from a browser tab: it sends what the frontend sends on each pen-up (a rerun of the page
with every widget's value, the canvas's drawing among them) and on a click (the same, with the button's trigger),
and reads the page back as the elements the script produces. What it leaves out is the browser's own work (layout,
painting, the canvas turning strokes into a PNG), which in a class happens on each student's own device.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import time

import websockets
from PIL import Image
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from digitlab.bench.strokes import render_digit, stroke_points

BOX = (85, 45, 195, 235)  # where the digit goes on the 280 px canvas, as the browser benchmark draws it
PREDICTION = "data-testid='draw-prediction'"
ADDED = "to the class collection: the"


@functools.lru_cache(maxsize=None)
def canvas_state(digit: int, strokes: int, stroke_width: int = 18) -> str:
    """The canvas's value after ``strokes`` pen-ups of ``digit``, as its frontend sends it: the Fabric.js drawing
    and the canvas as a PNG data URL."""
    buffer = io.BytesIO()
    Image.fromarray(render_digit(digit, BOX, stroke_width, background="black", strokes=strokes)).save(buffer, "PNG")
    paths = [{"type": "path", "stroke": "#FFFFFF", "strokeWidth": stroke_width,
              "path": [["M", *stroke[0]], *(["L", *point] for point in stroke[1:])]}
             for stroke in stroke_points(digit, BOX)[:strokes]]
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return json.dumps({"drawing": {"raw": {"version": "5.3.0", "objects": paths}, "data": url}})


class LightSession:
    """One session on ``page`` of the app at ``url``; ``open()`` it, then ``draw`` and ``add``."""

    def __init__(self, url: str, page: str):
        self.url, self.page = url, page
        self.ids: dict[str, str] = {}  # widget key: the widget's id on the page as last drawn
        self.fragments: dict[str, str] = {}  # widget key: the fragment that draws it ("" for none)
        self.page_hash = ""  # the page's id, as the server named it: what the frontend sends once it knows it
        self.values: dict[str, WidgetState] = {}  # widget key: the value this session gave it
        self.socket = None

    async def open(self) -> None:
        self.socket = await websockets.connect(self.url.replace("http", "ws", 1) + "/_stcore/stream",
                                               subprotocols=["streamlit"], max_size=2**26)
        await self._rerun()

    async def close(self) -> None:
        await self.socket.close()

    async def draw(self, digit: int) -> list[float]:
        """Draw ``digit`` a stroke at a time; the seconds from each pen-up to the page's new prediction."""
        canvas = next(key for key in self.ids if key.startswith("draw.canvas."))
        times = []
        for strokes in range(1, len(stroke_points(digit, BOX)) + 1):
            self.values[canvas] = WidgetState(id=self.ids[canvas], json_value=canvas_state(digit, strokes))
            started = time.perf_counter()
            if not await self._rerun(until=lambda body: PREDICTION in body, fragment=self.fragments[canvas]):
                raise RuntimeError(f"the page showed no prediction after stroke {strokes} of a {digit}")
            times.append(time.perf_counter() - started)
        return times

    async def add(self) -> tuple[bool, float]:
        """Click "Add to the class collection"; whether the page said it was added (not refused), and how long it
        took."""
        started = time.perf_counter()
        added = await self._rerun(WidgetState(id=self.ids["draw.save"], trigger_value=True),
                                  until=lambda body: ADDED in body, fragment=self.fragments["draw.save"])
        return added, time.perf_counter() - started

    async def _rerun(self, *triggers: WidgetState, until=None, fragment: str = "") -> bool:
        """Rerun the page (or only its ``fragment``, as the frontend does for a widget inside one) with this
        session's widget values (and ``triggers``, for this run only), and read what it draws until it has finished
        (a run that ends in a rerun goes on to the next one). True if an element's text satisfied ``until`` on the
        way."""
        message = BackMsg()
        message.rerun_script.page_name = self.page
        message.rerun_script.page_script_hash = self.page_hash
        message.rerun_script.fragment_id = fragment
        message.rerun_script.widget_states.widgets.extend([*self.values.values(), *triggers])
        await self.socket.send(message.SerializeToString())
        met = False
        while True:
            reply = ForwardMsg()
            reply.ParseFromString(await self.socket.recv())
            kind = reply.WhichOneof("type")
            if kind == "new_session":  # a run of the script begins: the page is drawn again from the top
                self.ids = {}
            elif kind == "navigation":  # the page this run draws, which a fragment's own st.rerun() reruns
                self.page_hash = reply.navigation.page_script_hash
            elif kind == "script_finished" and reply.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                # A widget the page no longer draws (the canvas of a kept drawing) keeps no value.
                self.values = {key: value for key, value in self.values.items() if key in self.ids}
                return met
            elif kind == "delta" and reply.delta.WhichOneof("type") == "new_element":
                element = reply.delta.new_element
                shown = getattr(element, element.WhichOneof("type"))
                if widget := getattr(shown, "id", ""):
                    key = widget.rsplit("-", 1)[-1]  # ids end with the widget's key
                    self.ids[key], self.fragments[key] = widget, reply.delta.fragment_id
                met = met or (until is not None and until(getattr(shown, "body", "")))
