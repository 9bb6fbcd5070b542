"""Run options: label smoothing, a validation share with the best checkpoint,
TensorBoard logs."""

import json
import math
import os

import numpy as np
import pytest

from simmim_tf.data import sort_of_clevr
from simmim_tf.errors import SimMIMInputError
from simmim_tf.models.smoothed_answer_loss import SmoothedAnswerLoss
from simmim_tf.training.run_config import RunConfig
from simmim_tf.training.runs import load_run
from simmim_tf.training.vqa_trainer import train


def test_smoothed_loss_by_hand():
    # Logits (2, 0, 0): p = (e^2, 1, 1) / (e^2 + 2). With s = 0.3 and K = 3 the
    # target is (0.8, 0.1, 0.1).
    p = np.array([math.e**2, 1, 1]) / (math.e**2 + 2)
    expected = -(0.8 * math.log(p[0]) + 0.1 * math.log(p[1]) + 0.1 * math.log(p[2]))
    loss = SmoothedAnswerLoss(label_smoothing=0.3)
    assert float(loss(np.array([0]), np.array([[2.0, 0.0, 0.0]]))) == pytest.approx(expected)
    plain = SmoothedAnswerLoss(label_smoothing=0.0)
    assert float(plain(np.array([0]), np.array([[2.0, 0.0, 0.0]]))) == pytest.approx(
        -math.log(p[0])
    )
    with pytest.raises(ValueError, match="label_smoothing"):
        SmoothedAnswerLoss(label_smoothing=1.0)


def test_validation_share_best_checkpoint_logs_and_skipping(tmp_path, capsys):
    data = str(tmp_path / "data")
    sort_of_clevr.generate(data, num_images=20, seed=8, num_test=2, progress=False)
    # A truncated line in the test split: skipped, counted, listed; training unchanged.
    path = os.path.join(data, "questions.jsonl")
    lines = open(path).read().splitlines()
    lines[-1] = lines[-1][:25]
    open(path, "w").write("\n".join(lines) + "\n")
    # A cut training image: its 20 questions are left out, and counted.
    image = os.path.join(data, "images", "000000.png")
    open(image, "wb").write(open(image, "rb").read()[:60])
    run = str(tmp_path / "run")
    config = RunConfig(
        data=data,
        epochs=2,
        batch_size=32,
        label_smoothing=0.1,
        validation_fraction=0.2,
        skip_bad_records=True,
    )
    model = train(config, run, verbose=0)
    skipped = open(os.path.join(run, "skipped_records.txt")).read().splitlines()
    assert len(skipped) == 2 and "questions.jsonl:400: not valid JSON" in skipped[0]
    assert "000000.png" in skipped[1] and "(20 question(s) use it)" in skipped[1]
    assert "skipped 2 bad record(s), leaving out 21 questions" in capsys.readouterr().out
    history = json.load(open(os.path.join(run, "history.json")))
    assert len(history["val_accuracy"]) == 2
    # The tiny preset's anchor is trained where the data has scenes, on the
    # validation share too (every Sort-of-CLEVR question names an object).
    assert len(history["anchor_loss"]) == len(history["val_anchor_loss"]) == 2
    assert all(np.isfinite(history["anchor_loss"]))
    best = json.load(open(os.path.join(run, "best.json")))
    assert best["monitor"] == "val_accuracy"
    assert best["value"] == pytest.approx(max(history["val_accuracy"]))
    assert best["epoch"] == 1 + int(np.argmax(history["val_accuracy"]))
    assert os.path.isfile(os.path.join(run, "best", "task.json"))
    # best/ is a whole run: export and evaluate find the data from it.
    saved = RunConfig.load(os.path.join(run, "best", "run_config.json"))
    assert saved.data == data and saved.validation_fraction == 0.2
    best_model = load_run(os.path.join(run, "best"))
    assert best_model.preprocessor.answers == load_run(run).preprocessor.answers
    assert isinstance(model.loss, SmoothedAnswerLoss) and model.loss.label_smoothing == 0.1
    # 18 training images, 4 held out: 14 x 20 questions train, in groups of
    # 4 questions of one image (5 per image), 8 groups a batch: ceil(70 / 8).
    assert history["steps"] == 2 * math.ceil(14 * 5 / 8)
    assert "grounding_loss" in history  # the generated data has scenes
    logs = os.path.join(run, "logs")
    assert {"train", "validation"} <= set(os.listdir(logs))


def test_global_batch_and_learning_rate_scaling():
    config = RunConfig(data="d", batch_size=64, learning_rate=1e-3)
    assert config.global_batch_and_learning_rate(2) == (64, 1e-3)
    per_replica = RunConfig(data="d", per_replica_batch_size=32, learning_rate_base_batch=64)
    assert per_replica.global_batch_and_learning_rate(4) == (128, pytest.approx(2e-3))
    scaled = RunConfig(data="d", batch_size=256, learning_rate_base_batch=64)
    assert scaled.global_batch_and_learning_rate(1) == (256, pytest.approx(4e-3))
    with pytest.raises(ValueError, match="does not split evenly between 3 replicas"):
        config.global_batch_and_learning_rate(3)
    with pytest.raises(ValueError, match="per_replica_batch_size must be at least 1"):
        RunConfig(data="d", per_replica_batch_size=0).global_batch_and_learning_rate(1)


def test_the_data_code_sees_the_data_section_only():
    import ast
    import inspect

    from simmim_tf.training import training_data

    config = RunConfig(data="d", preset="tiny", grounding_weight=0.0, learning_rate=5e-4)
    section = config.data_section()
    assert (section.folder, section.grounding, section.num_anchors) == ("d", False, 2)
    assert section.losses_off == ("grounding off (grounding_weight 0)",)
    assert not hasattr(section, "learning_rate")  # optimisation is not the data's
    assert config.data_section(patch_size=16).patch_size == 16  # a pretrained encoder's
    small = RunConfig(data="d", preset="small", anchor_weight=0.0).data_section()
    assert small.num_anchors == 0 and small.losses_off == ("anchor off (anchor_weight 0)",)
    # No name of the data code refers to the run configuration.
    tree = ast.parse(inspect.getsource(training_data))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not names & {"RunConfig", "config"}


def test_every_pipeline_trains_the_object_losses_and_says_so(tmp_path, capsys):
    """The streaming pipeline (one question per example, as under any
    tf.distribute strategy) carries each question's object targets; several
    steps per graph call take the same optimizer steps, each a batch."""
    data = str(tmp_path / "data")
    sort_of_clevr.generate(data, num_images=6, seed=3, num_test=2, progress=False)
    config = RunConfig(
        data=data, epochs=2, batch_size=16, input_pipeline="stream", steps_per_execution=3
    )
    model = train(config, str(tmp_path / "stream"), verbose=0)
    out = capsys.readouterr().out
    assert "losses: answers, grounding, anchor (objects from scenes.jsonl)" in out
    assert "questions_per_image 4: one question per example" in out
    history = json.load(open(tmp_path / "stream" / "history.json"))
    # 4 training images, 20 questions each: ceil(80 / 16) batches an epoch,
    # in graph calls of 3 steps and then 2.
    assert history["steps"] == 2 * math.ceil(80 / 16)
    assert all(np.isfinite(history[k][0]) for k in ("grounding_loss", "anchor_loss", "loss"))
    assert model.steps_per_execution == 3
    assert RunConfig.load(str(tmp_path / "stream" / "run_config.json")).steps_per_execution == 3
    # What a configuration cannot train is said, not dropped (no need to train for it).
    from simmim_tf.data.bad_records import BadRecords
    from simmim_tf.training.training_data import training_data

    config = RunConfig(data=data, batch_size=16, anchor_weight=0.0)
    said = training_data(config.data_section(), BadRecords()).object_losses
    assert (
        said
        == "losses: answers, grounding (objects from scenes.jsonl); anchor off (anchor_weight 0)"
    )


def test_time_budget_schedule_and_stop():
    """The learning rate follows the share of the time spent, and training
    stops when the time left would not fit an epoch's end (validation)."""
    from simmim_tf.training.time_budget import TimeBudget

    class Clock:
        now = 0.0

    budget = TimeBudget(1.0, peak=1e-3, warmup_fraction=0.1)
    budget.elapsed = lambda: Clock.now  # a fake clock: seconds since fit began

    class Model:
        stop_training = False

        class optimizer:  # noqa: N801
            class learning_rate:  # noqa: N801
                assign = staticmethod(lambda v: setattr(Model, "lr", v))

    budget.set_model(Model)
    for now, lr in ((3.0, 0.5e-3), (6.0, 1e-3), (33.0, 0.5e-3), (60.0, 0.0)):
        Clock.now = now
        budget.on_train_batch_begin(0)
        assert Model.lr == pytest.approx(lr, abs=1e-9), now
    Clock.now = 40.0
    budget.on_train_batch_end(0)
    budget.end_of_epoch_s = 15.0  # an epoch's validation took 15 s
    budget.on_train_batch_end(1)
    assert not Model.stop_training
    Clock.now = 46.0  # 14 s left: less than an epoch's end
    budget.on_train_batch_end(2)
    assert Model.stop_training and budget.stopped_early


def test_minutes_stop_training_and_the_run_is_whole(tmp_path, capsys):
    data = str(tmp_path / "data")
    sort_of_clevr.generate(data, num_images=40, seed=3, num_test=2, progress=False)
    run = str(tmp_path / "run")
    config = RunConfig(data=data, epochs=1000, batch_size=16, minutes=0.25, validation_fraction=0.1)
    train(config, run, verbose=0)
    assert "training for 0.25 minutes (at most 1000 epochs)" in capsys.readouterr().out
    history = json.load(open(os.path.join(run, "history.json")))
    assert 1 <= len(history["loss"]) < 1000
    assert load_run(run) is not None and os.path.isdir(os.path.join(run, "best"))


def test_grounding_only_where_scenes_exist_and_plain_batches_on_request(tmp_path, capsys):
    data = str(tmp_path / "data")
    sort_of_clevr.generate(data, num_images=6, seed=3, num_test=2, progress=False)
    os.remove(os.path.join(data, "scenes.jsonl"))  # as for an imported VQAv2 folder
    # One question per image: plain batches (image-grouped batches without
    # scenes run in tests/test_readme.py's own-data section).
    config = RunConfig(data=data, epochs=1, batch_size=16, questions_per_image=1)
    train(config, str(tmp_path / "no_scenes"), verbose=0)
    history = json.load(open(tmp_path / "no_scenes" / "history.json"))
    assert "grounding_loss" not in history and "accuracy" in history
    out = capsys.readouterr().out
    assert f"losses: answers only (no scenes.jsonl in {data}: grounding and anchor off)" in out
    assert "no scenes: relation offsets in image sides" in out
    trained = load_run(str(tmp_path / "no_scenes"))
    assert trained.backbone.relational["offsets_in_regions"] is False
    # Plain batches of 16 questions of 4 training images: ceil(80 / 16) steps.
    assert history["steps"] == 5
    with pytest.raises(ValueError, match="questions_per_image must be at least 1"):
        train(RunConfig(data=data, questions_per_image=0), str(tmp_path / "bad"), verbose=0)


def test_a_failed_start_leaves_no_run_folder(tmp_path):
    data = str(tmp_path / "data")
    sort_of_clevr.generate(data, num_images=6, seed=3, num_test=2, progress=False)
    path = os.path.join(data, "questions.jsonl")
    lines = open(path).read().splitlines()
    open(path, "w").write("\n".join([lines[0][:25], *lines[1:]]) + "\n")
    run = str(tmp_path / "run")
    with pytest.raises(SimMIMInputError, match="questions.jsonl:1: not valid JSON"):
        train(RunConfig(data=data, epochs=1, batch_size=16), run, verbose=0)
    assert not os.path.exists(run)  # no run_config.json left behind
    kept = tmp_path / "existing"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(SimMIMInputError):
        train(RunConfig(data=data, epochs=1, batch_size=16), str(kept), verbose=0)
    assert (kept / "notes.txt").read_text() == "mine"  # a folder that was there stays
