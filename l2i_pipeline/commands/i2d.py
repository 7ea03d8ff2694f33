"""img2dataset adapters for `l2i download`, used inside img2dataset's workers.

Downloads go through `urlsafety` (no private-network fetches unless allowed), and the resize/re-encode
step is replaced by `KeepBytes`, which keeps the bytes and only reads the header.
"""
from __future__ import annotations

import io
import warnings

from l2i_pipeline.core.config import DecodeConfig

MAX_PIXELS = DecodeConfig.max_pixels  # the same limit synthesize applies (Pillow's default bomb limit)


class KeepBytes:
    """img2dataset "resizer" that returns the downloaded bytes untouched.

    The synthesize stage decodes images itself, so nothing is decoded or re-encoded here; only the
    header is read, so that an empty body, an HTML page or a decompression bomb becomes a recorded
    failure (status failed_to_resize, error_message the reason) instead of a sample.
    """

    def __init__(self, max_pixels: int = MAX_PIXELS):
        self.max_pixels = max_pixels

    def __call__(self, img_stream, blurring_bbox_list=None):
        from PIL import Image

        img_stream.seek(0)
        data = img_stream.read()
        if not data:
            return None, None, None, None, None, "empty body (0 bytes)"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as im:
                    width, height = im.size
        except Image.DecompressionBombError as e:
            return None, None, None, None, None, f"decompression bomb: {e}"
        except Image.UnidentifiedImageError:
            return None, None, None, None, None, "not an image: unrecognised format"
        except Exception as e:  # noqa: BLE001  # any header error is a recorded failure
            return None, None, None, None, None, f"not an image: {type(e).__name__}: {e}"
        if width * height > self.max_pixels:
            return None, None, None, None, None, f"image too large: {width}x{height} > {self.max_pixels} pixels"
        return data, width, height, width, height, None


def _make_safe_downloader():
    """Build the img2dataset Downloader subclass on first use (importing img2dataset takes seconds)."""
    from img2dataset.downloader import Downloader

    from l2i_pipeline.commands.urlsafety import install_in_img2dataset

    class SafeDownloader(Downloader):
        """img2dataset's Downloader with safe fetching and `KeepBytes`, set up in the worker running it."""

        def __init__(self, *args, allow_private_network: bool = False, max_pixels: int = MAX_PIXELS, **kwargs):
            super().__init__(*args, **kwargs)
            self.allow_private_network = allow_private_network
            self.resizer = KeepBytes(max_pixels)

        def download_shard(self, row):
            install_in_img2dataset(self.allow_private_network)
            return super().download_shard(row)

    SafeDownloader.__module__ = __name__  # so pickle finds it by this module's name
    SafeDownloader.__qualname__ = "SafeDownloader"
    return SafeDownloader


def __getattr__(name: str):
    # Workers unpickle `SafeDownloader` by this module's name; build it lazily there too.
    if name == "SafeDownloader":
        globals()[name] = _make_safe_downloader()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
