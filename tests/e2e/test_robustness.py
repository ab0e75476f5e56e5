"""The robustness lab in Chromium: a rotation sweep draws one curve per model; moving ε changes the predictions."""

from playwright.sync_api import expect


def open_on_a_test_image(tab, view: str) -> None:
    """The Inside page opened straight on ``view`` (the Inside view's embeddings are never computed), looking at
    test image 0."""
    tab.open(f"inside?inside.view={view}")
    tab.page.get_by_text("A test image", exact=True).click()
    tab.wait_for_rerun()


def test_a_rotation_sweep_draws_one_curve_per_model(new_tab):
    tab = new_tab()
    open_on_a_test_image(tab, "Perturb")
    chart = tab.page.locator(f"{tab.keyed('inside.perturb.chart')} .js-plotly-plot")
    expect(chart).to_have_count(1)
    lengths = tab.trace_lengths("inside.perturb.chart")
    assert lengths.count(25) == 4, lengths  # a 25-step curve per shipped model, and their rings where answers change
    # The strip's caption: expect() retries while the image element that carries it is still being drawn.
    expect(tab.page.locator("[data-testid='stMain']")).to_contain_text("Rotation from -60° to +60°, 25 steps")
    assert tab.exceptions() == [] and tab.console_errors == []


def answers(tab) -> list[str]:
    """Each shipped model's column: its name, "said 7 (99%) · still says 7 (98%)" and the two images' captions."""
    return [" ".join(tab.page.locator(tab.keyed(f"inside.adversarial.model.shipped-{m}")).inner_text().split())
            for m in ("mlp", "cnn", "lenet", "resnet")]


def test_moving_epsilon_changes_the_predictions(new_tab):
    tab = new_tab()
    open_on_a_test_image(tab, "Adversarial")
    tab.page.get_by_text("PGD (10 steps)", exact=True).click()
    tab.wait_for_rerun()
    slider = tab.page.locator(tab.keyed("inside.adversarial.epsilon")).get_by_role("slider")
    slider.focus()
    slider.press("Home")  # ε = 0: the image as it is
    tab.wait_for_rerun()
    before = answers(tab)
    assert all("still says" in answer for answer in before), before
    slider.press("End")  # ε = 0.3
    tab.wait_for_rerun()
    after = answers(tab)
    assert after != before and any("now says" in answer for answer in after), after
    assert tab.exceptions() == [] and tab.console_errors == []
