"""Byte-level facts about image files that Pillow gets wrong on its own.

Two quirks of real public data, handled where the bytes are still at hand:

- **3-sample "grayscale" TIFFs.** CVC-ClinicDB's frames are TIFFs with
  three 8-bit samples per pixel but PhotometricInterpretation=BlackIsZero
  (a grayscale tag). Pillow has no mode for that combination and refuses
  the file as unidentified. Viewers and tifffile read the three samples as
  colour channels; so does keras-pu: `three_sample_grayscale_as_rgb`
  returns the file's bytes with the tag set to RGB (nothing else changes),
  which Pillow then decodes.
- **JPEGs with zeroed scan data.** A JPEG whose entropy-coded data holds
  a run of zero bytes (a disk or transfer error, a file pre-allocated and
  never fully written) decodes in Pillow without a word: libjpeg's
  "corrupt data" warnings are not surfaced. Real encoders practically never
  write such a run (the longest run found in the 3,000 JPEGs of Kvasir-SEG
  and ISIC 2017 is 4 bytes); `zeroed_jpeg_scan` reports runs of
  `MIN_ZERO_RUN` (32) or more bytes.
"""

import struct

TIFF_MAGICS = (b"II*\x00", b"MM\x00*")
_PHOTOMETRIC = 262
_SAMPLES_PER_PIXEL = 277
_BITS_PER_SAMPLE = 258
_SHORT, _LONG = 3, 4
_BLACK_IS_ZERO, _RGB = 1, 2
MIN_ZERO_RUN = 32


def _tiff_entries(data):
    """(byte order, [(tag, type, count, value, offset of the value field)])
    of the first IFD of a classic TIFF; None when the bytes are not one."""
    if data[:4] not in TIFF_MAGICS or len(data) < 8:
        return None
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd + 2 > len(data):
        return None
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    entries = []
    for i in range(count):
        start = ifd + 2 + 12 * i
        if start + 12 > len(data):
            return None
        tag, kind, n = struct.unpack(order + "HHI", data[start:start + 8])
        if kind == _SHORT and n == 1:
            (value,) = struct.unpack(order + "H", data[start + 8:start + 10])
        elif kind == _LONG and n == 1:
            (value,) = struct.unpack(order + "I", data[start + 8:start + 12])
        else:
            value = None
        entries.append((tag, kind, n, value, start + 8))
    return order, entries


def tiff_layout(data):
    """{"photometric", "samples_per_pixel", "bits_per_sample"} of the first
    image of a TIFF (values None when absent or not single), or None when
    `data` is not a classic TIFF."""
    parsed = _tiff_entries(data)
    if parsed is None:
        return None
    _, entries = parsed
    tags = {tag: value for tag, _, _, value, _ in entries}
    return {
        "photometric": tags.get(_PHOTOMETRIC),
        "samples_per_pixel": tags.get(_SAMPLES_PER_PIXEL, 1),
        "bits_per_sample": tags.get(_BITS_PER_SAMPLE),
    }


def three_sample_grayscale_as_rgb(data):
    """The TIFF bytes with PhotometricInterpretation BlackIsZero -> RGB when
    the first image has 3 samples per pixel; None when that is not the case
    (not a TIFF, another layout)."""
    parsed = _tiff_entries(data)
    if parsed is None:
        return None
    order, entries = parsed
    tags = {tag: (kind, value, where) for tag, kind, _, value, where in entries}
    photometric = tags.get(_PHOTOMETRIC)
    samples = tags.get(_SAMPLES_PER_PIXEL)
    if (photometric is None or samples is None or photometric[1] != _BLACK_IS_ZERO
            or samples[1] != 3 or photometric[0] != _SHORT):
        return None
    patched = bytearray(data)
    where = photometric[2]
    patched[where:where + 2] = struct.pack(order + "H", _RGB)
    return bytes(patched)


def zeroed_jpeg_scan(data):
    """Length of the longest run of zero bytes after the first start-of-scan
    marker of a JPEG, when it is at least MIN_ZERO_RUN; else 0."""
    start = data.find(b"\xff\xda")
    if start < 0:
        return 0
    scan = data[start:]
    run = b"\x00" * MIN_ZERO_RUN
    at = scan.find(run)
    if at < 0:
        return 0
    end = at + MIN_ZERO_RUN
    while end < len(scan) and scan[end] == 0:
        end += 1
    return end - at
