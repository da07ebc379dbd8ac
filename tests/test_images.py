"""Image decoding: EXIF orientation, colour modes, bit depth, size caps and bad files."""

import io

import numpy as np
import pytest
from PIL import Image

from rfdetr_demo.image.decode import ImageLoadError, load_image


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_exif_orientation_is_applied(tmp_path):
    # A 40x20 image whose left half is red; EXIF orientation 6 means "rotate 90° clockwise to display".
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    path = _save(img, tmp_path / "rot.jpg", exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.rgb.shape == (40, 20, 3)  # displayed upright: portrait
    assert loaded.original_size == (20, 40)
    # After a clockwise rotation the (red) left half ends up on top.
    assert loaded.rgb[5, 10, 0] > 200 and loaded.rgb[35, 10, 0] < 60


def test_grayscale_rgba_palette_and_cmyk_become_rgb(tmp_path):
    gray = load_image(_save(Image.new("L", (30, 20), 128), tmp_path / "g.png"))
    assert gray.rgb.shape == (20, 30, 3) and (gray.rgb == 128).all()
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    out = load_image(_save(rgba, tmp_path / "a.png"))
    assert (out.rgb == 255).all(), "fully transparent pixels composite onto white"
    assert any("white" in n for n in out.notes)
    cmyk = load_image(_save(Image.new("CMYK", (10, 10), (0, 255, 255, 0)), tmp_path / "c.jpg"))
    r, g, b = cmyk.rgb[5, 5].astype(int)
    assert r > 200 and g < 60 and b < 60, "CMYK (0,100%,100%,0) is red"


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    arr = np.full((8, 8), 40000, dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    out = load_image(path)
    expected = round(40000 / 65535 * 255)
    assert abs(int(out.rgb[0, 0, 0]) - expected) <= 1
    assert out.rgb.dtype == np.uint8


def test_large_images_are_downscaled_with_a_note(tmp_path):
    path = _save(Image.new("RGB", (2000, 1000), (10, 200, 30)), tmp_path / "big.jpg", quality=90)
    out = load_image(path, max_side=500)
    assert out.rgb.shape == (250, 500, 3)
    assert out.original_size == (2000, 1000)
    assert any("Downscaled from 2000x1000 to 500x250" in n for n in out.notes)


def test_bytes_input():
    buf = io.BytesIO()
    Image.new("RGB", (7, 5), (1, 2, 3)).save(buf, format="PNG")
    out = load_image(buf.getvalue())
    assert out.rgb.shape == (5, 7, 3) and tuple(out.rgb[0, 0]) == (1, 2, 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"hello, I am text", "Could not read"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "Could not read|corrupt"),
    ],
)
def test_bad_files_raise_image_load_error(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message):
        load_image(path)


def test_truncated_jpeg_is_reported(tmp_path, coco_image_paths):
    data = next(iter(coco_image_paths.values())).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageLoadError, match="corrupt or truncated"):
        load_image(path)


def test_large_16_bit_and_palette_images_are_reduced_before_conversion(tmp_path):
    """Shrunk while still 16-bit / palette (band by band, box average), then converted: same values, right size."""
    ramp = np.tile(np.linspace(0, 65535, 400).astype(np.uint16), (300, 1))
    path = tmp_path / "deep_big.png"
    Image.fromarray(ramp).save(path)
    out = load_image(path, max_side=100)
    assert out.rgb.shape == (75, 100, 3) and out.original_size == (400, 300)
    expected = np.round(ramp[0].reshape(100, 4).mean(axis=1) / 65535 * 255)  # columns 4 by 4, like the box average
    assert np.abs(out.rgb[10, :, 0].astype(int) - expected).max() <= 1
    assert sum("high bit depth" in n for n in out.notes) == 1 and not any("Grayscale" in n for n in out.notes)
    palette = Image.new("P", (400, 200))
    palette.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    palette.paste(1, (200, 0, 400, 200))
    out = load_image(_save(palette, tmp_path / "pal.png"), max_side=100)
    assert out.rgb.shape == (50, 100, 3)
    assert tuple(out.rgb[25, 10]) == (255, 0, 0) and tuple(out.rgb[25, 90]) == (0, 0, 255)


def test_reduced_images_keep_their_exif_orientation(tmp_path):
    arr = np.zeros((200, 400, 3), np.uint8)
    arr[:, :200] = (255, 0, 0)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rot.png"
    img.save(path, exif=exif)
    loaded = load_image(path, max_side=100)
    assert loaded.rgb.shape == (100, 50, 3) and loaded.original_size == (200, 400)
    assert loaded.rgb[20, 25, 0] > 200 and loaded.rgb[80, 25, 0] < 60  # the red left half is on top


def test_formats_decoded_in_full_get_a_lower_pixel_cap(tmp_path, monkeypatch):
    from rfdetr_demo.image import decode

    monkeypatch.setattr(decode, "DECODE_BUDGET_BYTES", 4 * 100 * 100)  # 10 000 RGB pixels
    rgb = Image.new("RGB", (200, 100), (10, 20, 30))
    with pytest.raises(ImageLoadError, match=r"200x100 \(0 MP\); the limit is 0 MP for PNG files\. Please downscale"):
        load_image(_save(rgb, tmp_path / "big.png"))
    assert load_image(_save(rgb, tmp_path / "big.jpg")).size == (200, 100)  # JPEG decodes at a reduced size
    assert decode.pixel_cap("PNG", "I;16") == 20_000 and decode.pixel_cap("PNG", "P") == 4 * 100 * 100 // 5
    assert decode.pixel_cap("JPEG", "RGB") == decode.MAX_DECODE_PIXELS
