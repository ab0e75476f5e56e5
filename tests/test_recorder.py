import threading

from digitlab.engine import train
from digitlab.recorder import record_training
from digitlab.store import RunStore
from tests.racers import TINY


def test_a_stop_before_the_first_batch_keeps_a_stopped_run_without_weights(store_root, tiny_data):
    """No batch trained means the weights are random: such a run is kept, stopped with no finished epoch, and is
    not offered to Errors or Draw (which take usable runs)."""
    stop = threading.Event()
    stop.set()
    record = record_training(RunStore(store_root), TINY, train(TINY, tiny_data, stop))
    assert record.status == "stopped" and record.epochs == []
    assert not record.has_weights and not record.usable
    assert "test_acc" not in record.final and record.test_acc is None
    assert [r.id for r in RunStore(store_root).list().runs] == [record.id]


def test_a_stop_after_some_batches_keeps_those_weights(store_root, tiny_data):
    stop = threading.Event()

    def stop_after_two_batches(events):
        for event in events:
            yield event
            if getattr(event, "batch", 0) == 2:
                stop.set()

    record = record_training(RunStore(store_root), TINY, stop_after_two_batches(train(TINY, tiny_data, stop)))
    assert record.status == "stopped" and record.has_weights and record.usable
    assert 0 <= record.test_acc <= 1


def test_the_run_records_the_precision_it_trained_in(store_root, tiny_data):
    import torch

    from digitlab.device import auto_precision

    auto = record_training(RunStore(store_root), TINY, train(TINY, tiny_data))
    fp32 = record_training(RunStore(store_root), TINY.replace(precision="fp32"), train(TINY.replace(precision="fp32"),
                                                                                        tiny_data))
    assert auto.data["precision"] == auto_precision(torch.device("cpu")) and auto.config.precision == "auto"
    assert fp32.data["precision"] == "fp32"
