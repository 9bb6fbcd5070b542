"""`make demo`'s own logic that runs without training (the demo itself is
README's first command, run by hand)."""

from simmim_tf import demo


def test_a_budget_that_held_fewer_epochs_than_the_recipe_says_so():
    line = demo._short_of_recipe(minutes=6.0, epochs_trained=2, train_s=360.0)
    assert "trained 2 epoch(s) in the 6-minute budget" in line
    assert f"--epochs {demo.RECIPE_EPOCHS}" in line
    # 180 s an epoch here, so the recipe's epochs take 21 minutes.
    assert "about 21 minutes" in line


def test_nothing_is_said_when_the_recipe_fitted_or_there_was_no_budget():
    assert demo._short_of_recipe(6.0, demo.RECIPE_EPOCHS, 360.0) is None
    assert demo._short_of_recipe(None, 2, 360.0) is None
