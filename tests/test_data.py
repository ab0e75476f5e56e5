import pytest
import torch

from digitlab.data import (
    BACKGROUND,
    INPUT_SCALINGS,
    MNIST_MEAN,
    MNIST_STD,
    RAW_FILES,
    DataNotFoundError,
    Split,
    augment,
    batches,
    data_root,
    load_mnist,
    load_test_split,
    normalize,
    scale_pixels,
    split_fingerprint,
    to_device,
)


def test_loads_idx_files_into_uint8_tensors(tiny_data):
    assert tiny_data.train_images.shape == (300, 28, 28) and tiny_data.train_images.dtype == torch.uint8
    assert tiny_data.test_images.shape == (100, 28, 28)
    assert set(tiny_data.train_labels.tolist()) == set(range(10))


def test_loading_twice_reuses_the_tensors(tiny_data_root):
    assert load_mnist(tiny_data_root, download=False) is load_mnist(tiny_data_root, download=False)


def test_missing_data_offline_names_the_folder_and_files(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_mnist(tmp_path / "nowhere", download=False)
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    for name in RAW_FILES:
        assert name in message
    assert "DIGITLAB_DATA" in message


def test_the_test_split_read_alone_is_load_mnists_to_the_byte(tiny_data_root, tiny_data):
    alone = load_test_split(tiny_data_root, download=False)
    assert type(alone).__name__ == "TestSplit"  # read from the raw files, not through torchvision
    assert alone.test_images.dtype == torch.uint8 and alone.test_labels.dtype == torch.int64
    assert torch.equal(alone.test_images, tiny_data.test_images)
    assert torch.equal(alone.test_labels, tiny_data.test_labels)
    assert split_fingerprint(alone, "test") == split_fingerprint(tiny_data, "test")  # the caches' key


def test_the_test_split_falls_back_to_load_mnist_where_its_files_are_not_raw_idx(tiny_data_root, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_FILES:
        (raw / name).write_bytes((tiny_data_root / "MNIST" / "raw" / name).read_bytes())
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(100))  # 1-D: not images
    with pytest.raises(DataNotFoundError):  # torchvision refuses the file too: load_mnist says what is wrong
        load_test_split(tmp_path, download=False)
    with pytest.raises(DataNotFoundError) as err:
        load_test_split(tmp_path / "nowhere", download=False)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in str(err.value)


def test_data_root_comes_from_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    (tmp_path / "x" / "MNIST" / "raw").mkdir(parents=True)
    assert data_root(tmp_path / "x" / "MNIST") == tmp_path / "x"
    assert data_root(tmp_path / "x" / "MNIST" / "raw") == tmp_path / "x"
    monkeypatch.delenv("DIGITLAB_DATA")
    assert str(data_root()) == "data"


def test_normalize_uses_mnist_constants():
    images = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    out = normalize(images)
    assert out.shape == (1, 1, 1, 2)
    assert out[0, 0, 0, 0].item() == pytest.approx(-MNIST_MEAN / MNIST_STD)
    assert out[0, 0, 0, 1].item() == pytest.approx((1 - MNIST_MEAN) / MNIST_STD)


@pytest.mark.parametrize("scaling", list(INPUT_SCALINGS))
def test_normalize_gives_the_very_bits_of_scale_pixels_and_leaves_its_input_alone(scaling):
    """Every prediction scales pixels through scale_pixels; training through normalize. They must agree exactly, or
    a stored test accuracy would not be what predict() gives."""
    images = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    kept = images.clone()
    assert torch.equal(normalize(images, scaling), scale_pixels(images.float() / 255.0, scaling).unsqueeze(1))
    assert torch.equal(images, kept)


def test_to_device_normalises_once_and_caches(tiny_data):
    first = to_device(tiny_data, torch.device("cpu"))
    assert first is to_device(tiny_data, torch.device("cpu"))
    assert first.train.images.shape == (300, 1, 28, 28) and first.train.images.dtype == torch.float32
    assert torch.equal(first.test.labels, tiny_data.test_labels)


def test_batches_cover_every_sample_once_in_a_seeded_order():
    split = Split(torch.arange(10).float().view(10, 1, 1, 1), torch.arange(10))
    seen = torch.cat([labels for _, labels in batches(split, 3, torch.Generator().manual_seed(1))])
    assert sorted(seen.tolist()) == list(range(10))
    again = torch.cat([labels for _, labels in batches(split, 3, torch.Generator().manual_seed(1))])
    assert torch.equal(seen, again)
    sizes = [len(labels) for _, labels in batches(split, 3, shuffle=False)]
    assert sizes == [3, 3, 3, 1]


def test_augment_keeps_shape_and_black_background(tiny_data):
    images = normalize(tiny_data.train_images[:16])
    for mode in ("shift", "shift_rotate"):
        out = augment(images, mode, torch.Generator().manual_seed(0))
        assert out.shape == images.shape
        assert not torch.equal(out, images)
        # The corners stay background: shifts bring black in, not grey.
        assert torch.allclose(out[:, :, 0, 0], torch.full((16, 1), BACKGROUND), atol=1e-5)
        # Ink moves but is mostly kept: at most 2 px of shift.
        assert out.sum().item() == pytest.approx(images.sum().item(), rel=0.1)
    assert augment(images, "none") is images
