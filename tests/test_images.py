"""The small renderings the pages show: enlarged digits and the Errors gallery's cards."""

import base64
import io
import re

import numpy as np
import torch
from PIL import Image

from digitlab.dashboard.images import digit_png, error_card_html, map_grid_png


def test_digit_png_enlarges_each_pixel_into_a_crisp_square():
    image = torch.arange(28 * 28, dtype=torch.int64).reshape(28, 28) % 256
    big = torch.from_numpy(np.array(Image.open(io.BytesIO(digit_png(image, scale=3)))))
    assert big.shape == (84, 84)
    assert torch.equal(big[::3, ::3], image.to(torch.uint8)) and torch.equal(big[2::3, 2::3], image.to(torch.uint8))


def test_an_error_card_holds_the_image_its_labels_and_the_top_three():
    image = torch.zeros(28, 28, dtype=torch.uint8)
    image[10:18, 12:16] = 255
    card = error_card_html(image, true_label=3, predicted=5, confidence=0.873, top=[(5, 0.873), (3, 0.1), (8, 0.02)])
    assert 'data-true="3" data-predicted="5"' in card
    caption = re.sub(r"<[^>]+>", "", re.search(r"<figcaption[^>]*>(.*?)</figcaption>", card)[1])
    assert caption == "3 → 5 · 87%"
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', card)[1])
    assert png == digit_png(image, scale=4)
    legend = re.sub(r"<[^>]+>", "", card.split("</figcaption>")[1]).replace("&nbsp;", " ")
    assert legend == "5 87% · 3 10% · 8 2%"


def decoded(png: bytes) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(io.BytesIO(png))))


def test_a_vector_shows_each_value_against_the_largest_of_the_layer():
    """Dense layers and the 10 probabilities: one square per value, grey level proportional to the value over the
    layer's largest, so a confident output is one bright square among dark ones."""
    probabilities = torch.tensor([0.0, 0.02, 0.5, 0.98, 0.25])
    grid = decoded(map_grid_png(probabilities))
    cell = grid.shape[1] // 5
    levels = grid[cell // 2, cell // 2 :: cell][:5].float()
    assert levels.tolist() == (probabilities / 0.98 * 255).round().tolist()


def test_each_feature_map_is_scaled_to_its_own_largest_value():
    maps = torch.zeros(2, 4, 4)
    maps[0, 1, 1], maps[0, 2, 2] = 2.0, 1.0
    maps[1, 3, 3] = 0.001  # faint everywhere, yet its brightest pixel is white
    grid = decoded(map_grid_png(maps, columns=2, cell=4))  # 1 px per value, no gutter between 1-pixel tiles
    assert grid.shape == (4, 8)
    assert grid[1, 1] == 255 and grid[2, 2] == 128 and grid[0, 0] == 0
    assert grid[3, 4 + 3] == 255
