"""Screenshots of an X display for the launcher tests, with no new dependency:
libX11's XGetImage through ctypes, written as PNG with zlib. A fake of nothing:
it reads the real pixels the real Tk window drew on the (Xvfb) display.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import zlib
from pathlib import Path

ZPIXMAP = 2
ALL_PLANES = 0xFFFFFFFF


class _XImage(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
                ("format", ctypes.c_int), ("data", ctypes.POINTER(ctypes.c_ubyte)), ("byte_order", ctypes.c_int),
                ("bitmap_unit", ctypes.c_int), ("bitmap_bit_order", ctypes.c_int), ("bitmap_pad", ctypes.c_int),
                ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int), ("bits_per_pixel", ctypes.c_int),
                ("red_mask", ctypes.c_ulong), ("green_mask", ctypes.c_ulong), ("blue_mask", ctypes.c_ulong)]


def _lib():
    name = ctypes.util.find_library("X11") or "libX11.so.6"
    x = ctypes.CDLL(name)
    x.XOpenDisplay.restype = ctypes.c_void_p
    x.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x.XGetImage.restype = ctypes.POINTER(_XImage)
    x.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                            ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
    x.XCloseDisplay.argtypes = [ctypes.c_void_p]
    x.XDestroyImage = None  # a macro in Xlib: the image is freed with XFree on its data and itself
    x.XFree.argtypes = [ctypes.c_void_p]
    return x


def available() -> bool:
    try:
        _lib()
        return True
    except OSError:
        return False


def grab(display: str, window_id: int, width: int, height: int) -> tuple[int, int, bytes]:
    """RGB pixels of a window (its id as Tk's winfo_id / frame gives it)."""
    x = _lib()
    dpy = x.XOpenDisplay(display.encode())
    if not dpy:
        raise OSError(f"cannot open X display {display}")
    try:
        img = x.XGetImage(dpy, window_id, 0, 0, width, height, ALL_PLANES, ZPIXMAP)
        if not img:
            raise OSError("XGetImage failed")
        im = img.contents
        if im.bits_per_pixel != 32:
            raise OSError(f"unsupported depth: {im.bits_per_pixel} bits per pixel")
        stride = im.bytes_per_line
        raw = ctypes.string_at(im.data, stride * im.height)
        rows = []
        for y in range(im.height):
            line = raw[y * stride: y * stride + im.width * 4]
            rgb = bytearray(im.width * 3)
            rgb[0::3], rgb[1::3], rgb[2::3] = line[2::4], line[1::4], line[0::4]  # BGRX -> RGB
            rows.append(bytes(rgb))
        w, h = im.width, im.height
        x.XFree(ctypes.cast(im.data, ctypes.c_void_p))
        x.XFree(ctypes.cast(img, ctypes.c_void_p))
        return w, h, b"".join(b"\x00" + r for r in rows)
    finally:
        x.XCloseDisplay(dpy)


def write_png(path: Path, width: int, height: int, filtered_rows: bytes) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(filtered_rows, 6)) + chunk(b"IEND", b""))
    path.write_bytes(png)
    return path


def screenshot(root, display: str, path: Path) -> Path:
    """PNG of the Tk root window's contents as drawn now."""
    root.update()
    wid = int(root.frame(), 16) if root.frame() else root.winfo_id()
    w, h, data = grab(display, wid, root.winfo_width(), root.winfo_height())
    return write_png(path, w, h, data)
