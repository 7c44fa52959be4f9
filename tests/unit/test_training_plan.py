"""How the Trainer covers the window: the plan's steps and sample, and the sampled records.

The records test fails on what the old input did at volume (files in name order, the first
51,200 records): it checks that a strided sample draws from every file and from all along each
file, not from its beginning.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models import record_counts, trainer
from models.trainer import plan_training


def test_a_small_split_is_read_whole_for_at_least_the_floor_of_steps():
    plan = plan_training(5_000, 128, 400, from_data=True, max_examples=524_288, feature_count=20)
    assert (plan.steps, plan.stride, plan.cache) == (400, 1, True)
    assert plan.shuffle_buffer == 5_000  # the whole split fits
    assert plan.batch_shuffle_buffer == 5  # every cached batch, in a new order each pass


def test_a_larger_split_is_seen_once_whole():
    plan = plan_training(100_000, 128, 400, from_data=True, max_examples=524_288, feature_count=20)
    assert (plan.steps, plan.stride, plan.cache) == (782, 1, True)


def test_past_the_cap_the_split_is_sampled_uniformly_in_one_pass():
    plan = plan_training(10_000_000, 128, 400, from_data=True, max_examples=524_288, feature_count=20)
    assert plan.steps == 4_096 and plan.stride == 20
    assert plan.examples / plan.stride <= plan.steps * 128
    # The sample is cached, and every pass over it visits its batches in a new order.
    assert plan.cache and plan.batch_shuffle_buffer == 489
    # The shuffle holds what its memory budget allows, not the whole sample.
    assert plan.shuffle_buffer == trainer.SHUFFLE_BUFFER_BYTES // (20 * trainer.SHUFFLE_BYTES_PER_FEATURE)


def test_a_cache_that_would_not_fit_is_not_made():
    plan = plan_training(10_000_000, 128, 100_000, from_data=False, max_examples=524_288, feature_count=20)
    assert plan.stride == 1 and not plan.cache
    assert plan.batch_shuffle_buffer * 1_024 * 20 * 8 <= 2**30


def test_explicit_steps_are_kept_and_the_split_still_sampled_across():
    plan = plan_training(10_000_000, 128, 5, from_data=False, max_examples=524_288, feature_count=20)
    assert plan.steps == 5 and plan.stride == 15_625  # 640 examples drawn from all 10M


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("records")
    paths = []
    for f in range(8):
        path = str(folder / f"data_tfrecord-{f}.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for i in range(5_000):
                writer.write(f"{f}:{i}".encode())
        paths.append(path)
    return paths


def sampled(files, stride, seed=42):
    records = [
        r for batch in trainer.record_batches(files, shuffle=True, seed=seed, stride=stride) for r in batch
    ]
    return [tuple(map(int, r.numpy().decode().split(":"))) for r in records]


def test_a_sample_draws_from_every_file_and_all_along_each(files):
    drawn = sampled(files, stride=10)
    assert len(drawn) == pytest.approx(4_000, abs=8)
    assert len(set(drawn)) == len(drawn)  # no record twice
    by_file = np.bincount([f for f, _ in drawn], minlength=8)
    assert by_file.min() > 400 and by_file.max() < 600, by_file
    positions = np.array([i for _, i in drawn])
    assert positions.min() < 50 and positions.max() > 4_950
    assert abs(positions.mean() - 2_500) < 150  # not the files' beginnings
    # The first thousand records the model would see come from several files, not the first one.
    assert len({f for f, _ in drawn[:1_000]}) == 8
    assert drawn == sampled(files, stride=10)  # the same seed draws the same sample


def test_without_a_stride_every_record_is_read_once(files):
    drawn = sampled(files, stride=1)
    assert sorted(drawn) == [(f, i) for f in range(8) for i in range(5_000)]


def test_the_split_is_counted_exactly(files):
    assert trainer.count_records(files) == 40_000


def test_the_split_size_comes_from_the_writers_record_when_it_lists_every_file(tmp_path):
    split = tmp_path / "examples" / "Split-train"
    split.mkdir(parents=True)
    paths = []
    for f, n in enumerate((3, 5)):
        path = str(split / f"data_tfrecord-{f}.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for _ in range(n):
                writer.write(b"x")
        paths.append(path)
    assert trainer.split_size(paths) == 8  # no record: counted
    # The record wins when it lists every file (a deliberately different figure shows it is read).
    record_counts.write_record_counts(str(tmp_path / "examples"), {paths[0]: 30, paths[1]: 50})
    assert trainer.split_size(paths) == 80
    assert record_counts.recorded_counts(paths) == [30, 50]  # per file, for the gates' blocks
    # A file it does not list: counted again, never guessed.
    extra = str(split / "data_tfrecord-9.gz")
    with tf.io.TFRecordWriter(extra, options="GZIP") as writer:
        writer.write(b"x")
    assert trainer.split_size([*paths, extra]) == 9


def test_records_at_keeps_the_order_asked_and_names_rows_beyond_the_split(files):
    rows = [39_999, 0, 5_000, 4_999]
    assert [r.decode() for r in trainer.records_at(files, rows)] == ["7:4999", "0:0", "1:0", "0:4999"]
    with pytest.raises(IndexError, match=r"rows \[40000\] are beyond the 40000 records"):
        trainer.records_at(files, [3, 40_000])
