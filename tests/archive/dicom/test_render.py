"""Orthanc's image arithmetic on small frames whose answers can be worked out by hand."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from archive.dicom import render
from archive.dicom.decode import CannotDecode, DecodedFrame, PixelFormat
from archive.dicom.render import Mode, Windowing
from tests.dicom_factory import make_dataset


def grey(values, fmt=PixelFormat.GRAYSCALE16) -> DecodedFrame:
    return DecodedFrame(np.array(values, dtype=fmt.dtype), fmt)


def test_preview_stretches_min_max_rounding_halves_up() -> None:
    # 255 / 2 = 127.5 per step: 0, 127.5 -> 128, 255
    assert render.preview(grey([[10, 11, 12]]), monochrome1=False).tolist() == [[0, 128, 255]]


def test_preview_of_a_flat_image_is_black_and_monochrome1_inverted() -> None:
    assert render.preview(grey([[7, 7]]), monochrome1=False).tolist() == [[0, 0]]
    assert render.preview(grey([[0, 100]]), monochrome1=True).tolist() == [[255, 0]]


def test_preview_of_signed_values() -> None:
    assert render.preview(grey([[-1000, 1000]], PixelFormat.SIGNED_GRAYSCALE16), monochrome1=False).tolist() == [[0, 255]]


def test_image_uint8_uint16_int16_clamp_without_scaling() -> None:
    frame = grey([[-5, 300, 40000 - 65536]], PixelFormat.SIGNED_GRAYSCALE16)
    assert render.truncated(frame, Mode.UINT8).pixels.tolist() == [[0, 255, 0]]
    assert render.truncated(frame, Mode.UINT16).pixels.tolist() == [[0, 300, 0]]
    assert render.truncated(frame, Mode.INT16).pixels.tolist() == [[-5, 300, 40000 - 65536]]


def test_colour_has_no_image_uint16() -> None:
    with pytest.raises(CannotDecode):
        render.truncated(DecodedFrame(np.zeros((1, 1, 3), np.uint8), PixelFormat.RGB24), Mode.UINT16)


def test_rendered_applies_rescale_then_window_with_floor() -> None:
    # CT: -1000 HU air, 40 HU soft tissue; window 40/400 maps [-160, 240] onto [0, 255]
    window = Windowing(center=40, width=400, slope=1, intercept=-1024)
    stored = grey([[24, 1064, 1184, 1400]])  # -1000, 40, 160, 376 HU
    assert render.rendered(stored, windowing=window, monochrome1=False).tolist() == [[0, 127, 204, 255]]


def test_rendered_monochrome1_is_inverted_last() -> None:
    window = Windowing(center=128, width=256)
    assert render.rendered(grey([[0, 255]]), windowing=window, monochrome1=True).tolist() == [[255, 1]]


def test_default_window_is_the_first_value_else_from_bits_stored() -> None:
    ds = make_dataset(WindowCenter=["40", "400"], WindowWidth=["400", "2000"], RescaleSlope="1",
                      RescaleIntercept="-1024")
    assert render.default_windowing(ds, 0) == Windowing(center=40, width=400, slope=1, intercept=-1024)
    ds = make_dataset(BitsStored=12)
    assert render.default_windowing(ds, 0) == Windowing(center=2048, width=4096)


def test_window_from_the_per_frame_functional_groups() -> None:
    from pydicom.dataset import Dataset

    ds = make_dataset()
    item, voi = Dataset(), Dataset()
    voi.WindowCenter, voi.WindowWidth = "100", "50"
    item.FrameVOILUTSequence = [voi]
    ds.PerFrameFunctionalGroupsSequence = [Dataset(), item]
    assert render.default_windowing(ds, 1).center == 100
    assert render.default_windowing(ds, 0).center == 2048


def test_target_size_keeps_the_aspect_ratio() -> None:
    assert render.target_size(512, 256, want_width=128, want_height=0) == (128, 64)
    assert render.target_size(512, 256, want_width=0, want_height=128) == (256, 128)
    assert render.target_size(512, 256, want_width=100, want_height=100) == (100, 50)
    assert render.target_size(10, 10, want_width=20, want_height=0) == (20, 20)


def test_rendered_resize_is_nearest_neighbour() -> None:
    window = Windowing(center=128, width=256)
    image = grey([[0, 64, 128, 255]] * 2)
    out = render.rendered(image, windowing=window, monochrome1=False, width=2)
    assert out.tolist() == [[63, 254]]


def test_smooth_blurs_before_shrinking() -> None:
    window = Windowing(center=128, width=256)
    image = grey([[0] * 8 + [255] * 8] * 8)
    sharp = render.rendered(image, windowing=window, monochrome1=False, width=4)
    smooth = render.rendered(image, windowing=window, monochrome1=False, width=4, smooth=True)
    assert sharp.tolist()[0] == [0, 0, 254, 254]
    assert 0 < smooth[0, 1] < 254 or 0 < smooth[0, 2] < 254


def test_encoders_round_trip() -> None:
    from PIL import Image

    pixels = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    assert np.asarray(Image.open(io.BytesIO(render.png_encode(pixels)))).tolist() == pixels.tolist()
    pam = render.pam_encode(pixels)
    assert pam.startswith(b"P7\nWIDTH 2\nHEIGHT 2\nDEPTH 1\nMAXVAL 65535\nTUPLTYPE GRAYSCALE\nENDHDR\n")
    assert np.frombuffer(pam.split(b"ENDHDR\n")[1], ">u2").tolist() == [0, 1000, 40000, 65535]
    signed = np.array([[-1]], dtype=np.int16)
    assert np.asarray(Image.open(io.BytesIO(render.png_encode(signed, signed=True)))).tolist() == [[65535]]


def test_matlab_text() -> None:
    assert render.matlab_text(grey([[1, 2], [3, 4]])) == "double([ 1 2 ; 3 4 ])"
    rgb = DecodedFrame(np.arange(6, dtype=np.uint8).reshape(1, 2, 3), PixelFormat.RGB24)
    assert render.matlab_text(rgb) == "double(permute(reshape([ 0 1 2 3 4 5 ], [ 3 1 2 ]), [ 3 2 1 ]))"


def test_numpy_header_is_padded_to_64_and_loads() -> None:
    frame = grey([[1, 2], [3, 4]])
    item = render.NumpyFrame(frame, slope=2.0, intercept=-1.0)
    data = bytes(render.numpy_file([item, item], rescale=True, stacked=True))
    assert (data.index(b"\n") + 1) % 64 == 0
    assert b"'shape': (2, 2,2,1), }" in data
    loaded = np.load(io.BytesIO(data))
    assert loaded.dtype == np.float32 and loaded.shape == (2, 2, 2, 1)
    assert loaded[1, :, :, 0].tolist() == [[1.0, 3.0], [5.0, 7.0]]
    compressed = render.numpy_compressed(render.numpy_file([item], rescale=True, stacked=False))
    assert zipfile.ZipFile(io.BytesIO(compressed)).namelist() == ["arr_0"]
    assert np.load(io.BytesIO(compressed))["arr_0"].shape == (2, 2, 1)
