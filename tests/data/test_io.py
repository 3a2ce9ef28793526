import numpy as np
import pytest
from PIL import Image

from scintix.data.io import ImageReadError, pixel_hash, read_image


def test_png_grey_and_rgb(tmp_path):
    grey = (np.arange(12 * 8) % 256).reshape(12, 8).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    arr, meta = read_image(tmp_path / "g.png")
    assert arr.shape == (1, 12, 8) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr[0], grey)
    assert meta["spacing"] == (1.0, 1.0) and meta["format"] == "png"
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[..., 1] = 100
    Image.fromarray(rgb).save(tmp_path / "c.png")
    arr, _ = read_image(tmp_path / "c.png")
    assert arr.shape == (1, 5, 6)
    np.testing.assert_allclose(arr, 58.7, rtol=1e-5)  # luminance weight of green
    arr, _ = read_image(tmp_path / "c.png", channels=None)
    assert arr.shape == (3, 5, 6)


def test_jpeg_tiff_npy(tmp_path):
    img = np.full((10, 7), 128, np.uint8)
    Image.fromarray(img).save(tmp_path / "a.jpg")
    Image.fromarray(img).save(tmp_path / "a.tif")
    np.save(tmp_path / "a.npy", img.astype(np.float32) * 10)
    assert read_image(tmp_path / "a.jpg")[0].shape == (1, 10, 7)
    assert read_image(tmp_path / "a.tif")[0].max() == 128
    assert read_image(tmp_path / "a.npy")[0].max() == 1280


def test_npz_medmnist_reference(tmp_path):
    imgs = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    np.savez(tmp_path / "m.npz", train_images=imgs, train_labels=np.array([[0], [1], [0]]))
    arr, _ = read_image(f"{tmp_path / 'm.npz'}#train/2")
    np.testing.assert_array_equal(arr[0], imgs[2])
    with pytest.raises(ImageReadError, match="index out of range"):
        read_image(f"{tmp_path / 'm.npz'}#train/3")
    with pytest.raises(ImageReadError, match="no array 'test_images'"):
        read_image(f"{tmp_path / 'm.npz'}#test/0")


@pytest.mark.parametrize(
    "content,match",
    [(b"", "not a recognised image|cannot decode|corrupt"), (b"not an image at all", "not a recognised image"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "corrupt|cannot decode|not a recognised")],
)
def test_bad_files_give_one_line_error_naming_the_file(tmp_path, content, match):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(ImageReadError, match=match) as err:
        read_image(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_truncated_jpeg(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8)).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="t.jpg"):
        read_image(tmp_path / "t.jpg")


def test_missing_file():
    with pytest.raises(ImageReadError, match="file not found"):
        read_image("/nonexistent/x.png")


def test_pixel_hash_equal_only_for_equal_pixels():
    a = np.ones((1, 4, 4), np.float32)
    assert pixel_hash(a) == pixel_hash(a.copy())
    b = a.copy()
    b[0, 0, 0] = 2
    assert pixel_hash(a) != pixel_hash(b)
    assert pixel_hash(a) != pixel_hash(np.ones((1, 2, 8), np.float32))  # same bytes, other shape
