"""The structure of the accepted image formats: where an image ends, and which of its parts are metadata.

Each format is walked by its own container structure (JPEG segments, PNG chunks, RIFF chunks, GIF blocks), never
decoded here. `image_end` finds where the image stops, so the caller can refuse data appended after it;
`without_metadata` rebuilds the file from the parts that draw the image, so EXIF (GPS positions, camera serials),
XMP, comments and text fields go while the pixels stay exactly as they were: nothing is re-encoded.

Kept are the parts that change how the pixels look: colour profiles and colour spaces, transparency, gamma,
physical pixel size, animation control. Parts a decoder may skip and that are not on that list are dropped, so
metadata in a private or future chunk goes too. A photo's EXIF orientation is the one value carried over (as a
new EXIF block holding only it), or a picture taken sideways would display sideways.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Iterator

Buffer = bytes | mmap.mmap


class Malformed(ValueError):
    """The file's structure breaks off or contradicts itself."""


# JPEG


JPEG_SOI, JPEG_EOI, JPEG_SOS, JPEG_COM, JPEG_APP1 = 0xD8, 0xD9, 0xDA, 0xFE, 0xE1
# The application segments kept, by marker and the identifier their data starts with: the JFIF header, an ICC
# profile, and Adobe's, which says how the colour channels are transformed (decoders read it). Other APPn
# segments are metadata: APP1 Exif and XMP, APP13 Photoshop/IPTC, APP12 Ducky, APP2 FlashPix and MPF.
JPEG_KEPT_APPS = {0xE0: b"JFIF\0", 0xE2: b"ICC_PROFILE\0", 0xEE: b"Adobe"}


def _jpeg_segments(data: Buffer) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each segment after the start-of-image marker, up to and including the
    end-of-image marker; a start-of-scan segment runs on over the entropy-coded data that follows it."""
    position, size = 2, len(data)
    while position + 1 < size:
        if data[position] != 0xFF:
            raise Malformed("a JPEG segment does not start with a marker")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        start = position
        if marker == JPEG_EOI:
            yield marker, start, position + 2
            return
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
        else:
            if position + 4 > size:
                raise Malformed("a JPEG segment is cut off")
            position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
            if marker == JPEG_SOS:
                position = _jpeg_scan_end(data, position)
        yield marker, start, position
    raise Malformed("the JPEG has no end-of-image marker")


def _jpeg_scan_end(data: Buffer, position: int) -> int:
    # Entropy-coded data runs to the next marker; FF 00 is an escaped FF byte and the restart markers FF D0-D7
    # belong to the scan.
    while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= len(data):
            raise Malformed("a JPEG scan is cut off")
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            position += 2
        elif following == 0xFF:
            position += 1
        else:
            return position


def _jpeg_end(data: Buffer) -> int:
    return [end for _, _, end in _jpeg_segments(data)][-1]


def _jpeg_keeps(data: Buffer, marker: int, start: int) -> bool:
    if marker == JPEG_COM:
        return False
    if 0xE0 <= marker <= 0xEF:
        identifier = JPEG_KEPT_APPS.get(marker)
        return identifier is not None and data[start + 4:start + 4 + len(identifier)] == identifier
    return True


def _jpeg_without_metadata(data: Buffer, exif: bytes | None) -> bytes:
    kept = [data[start:end] for marker, start, end in _jpeg_segments(data) if _jpeg_keeps(data, marker, start)]
    if exif is not None:
        payload = b"Exif\0\0" + exif
        # After the JFIF header when there is one (JFIF wants it first), else first.
        at = 1 if kept and kept[0][1] == 0xE0 else 0
        kept.insert(at, struct.pack(">BBH", 0xFF, JPEG_APP1, len(payload) + 2) + payload)
    return b"\xff\xd8" + b"".join(kept)


# PNG


# Ancillary chunks that change how the image looks (colour, transparency, gamma, pixel size, APNG animation).
# Critical chunks (an upper-case first letter) are always kept; every other ancillary chunk is dropped: eXIf,
# tEXt, iTXt (XMP lives there), zTXt, tIME and private ones.
PNG_KEPT = frozenset({
    b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"mDCV", b"cLLI", b"mDCv", b"cLLi", b"sBIT", b"pHYs",
    b"bKGD", b"hIST", b"sPLT", b"acTL", b"fcTL", b"fdAT",
})


def _png_chunks(data: Buffer) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk after the signature, up to and including IEND."""
    position = 8
    while position + 12 <= len(data):
        end = position + 12 + int.from_bytes(data[position:position + 4], "big")  # length, type, data, CRC
        if end > len(data):
            break
        kind = bytes(data[position + 4:position + 8])
        yield kind, position, end
        if kind == b"IEND":
            return
        position = end
    raise Malformed("the PNG has no IEND chunk")


def _png_end(data: Buffer) -> int:
    return [end for _, _, end in _png_chunks(data)][-1]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_without_metadata(data: Buffer, exif: bytes | None) -> bytes:
    kept = [data[:8]]
    for kind, start, end in _png_chunks(data):
        if not kind[0] & 0x20 or kind in PNG_KEPT:  # bit 5 of the first byte clear: a critical chunk
            kept.append(data[start:end])
        if kind == b"IHDR" and exif is not None:
            kept.append(_png_chunk(b"eXIf", exif))  # before the pixels, where decoders look for it
    return b"".join(kept)


# WebP


VP8X_EXIF, VP8X_XMP = 0x08, 0x04
# The chunks of an extended WebP that draw it; EXIF, XMP and unknown chunks are dropped.
WEBP_KEPT = frozenset({b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"})


def _webp_end(data: Buffer) -> int:
    end = 8 + int.from_bytes(data[4:8], "little")  # "RIFF", the size of what follows, then that much
    if end > len(data):
        raise Malformed("the WebP is shorter than its RIFF header says")
    return end


def _webp_chunks(data: Buffer) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each chunk after "RIFF", the size and "WEBP"."""
    position, end = 12, _webp_end(data)
    while position < end:
        if position + 8 > end:
            raise Malformed("a WebP chunk header is cut off")
        size = int.from_bytes(data[position + 4:position + 8], "little")
        if position + 8 + size > end:
            raise Malformed("a WebP chunk is cut off")
        yield bytes(data[position:position + 4]), data[position + 8:position + 8 + size]
        position += 8 + size + (size & 1)  # payloads are padded to an even size


def _webp_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)


def _webp_without_metadata(data: Buffer, exif: bytes | None) -> bytes:
    chunks = list(_webp_chunks(data))
    if not chunks or chunks[0][0] != b"VP8X":
        # The simple format is one VP8 or VP8L chunk and has no room for metadata.
        chunks, exif = chunks[:1], None
    kept = []
    for kind, payload in chunks:
        if kind == b"VP8X":
            # The header's flags say which chunks follow: they must match what is left.
            flags = payload[0] & ~(VP8X_EXIF | VP8X_XMP) | (VP8X_EXIF if exif is not None else 0)
            payload = bytes([flags]) + payload[1:]
        if kind in WEBP_KEPT:
            kept.append(_webp_chunk(kind, payload))
    if exif is not None:
        kept.append(_webp_chunk(b"EXIF", exif))  # after the image data, as the container specification orders
    body = b"WEBP" + b"".join(kept)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# GIF


GIF_EXTENSION, GIF_IMAGE, GIF_TRAILER = 0x21, 0x2C, 0x3B
GIF_COMMENT, GIF_APPLICATION = 0xFE, 0xFF
# Application extensions that change how the image plays or looks (looping, an ICC profile); others, XMP's
# ("XMP DataXMP") among them, are dropped, and so are comments.
GIF_KEPT_APPLICATIONS = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012"})


def _gif_color_table(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _gif_skip_sub_blocks(data: Buffer, position: int) -> int:
    while length := data[position]:
        position += 1 + length
    return position + 1


def _gif_header_end(data: Buffer) -> int:
    return 13 + _gif_color_table(data[10])  # header, logical screen descriptor, global colour table


def _gif_blocks(data: Buffer) -> Iterator[tuple[int, int, int]]:
    """(kind, start, end) of each block after the global colour table, up to and including the trailer; kind is
    an extension's label, GIF_IMAGE or GIF_TRAILER."""
    position = _gif_header_end(data)
    while True:
        block = data[position]
        if block == GIF_TRAILER:
            yield block, position, position + 1
            return
        if block == GIF_EXTENSION:  # label, then sub-blocks
            kind, end = data[position + 1], _gif_skip_sub_blocks(data, position + 2)
        elif block == GIF_IMAGE:  # descriptor, local colour table, LZW code size, then sub-blocks
            kind = block
            end = _gif_skip_sub_blocks(data, position + 10 + _gif_color_table(data[position + 9]) + 1)
        else:
            raise Malformed("an unknown GIF block")
        yield kind, position, end
        position = end


def _gif_end(data: Buffer) -> int:
    return [end for _, _, end in _gif_blocks(data)][-1]


def _gif_keeps(data: Buffer, kind: int, start: int) -> bool:
    if kind == GIF_COMMENT:
        return False
    if kind == GIF_APPLICATION:  # label, then a sub-block of 11 bytes: identifier and authentication code
        return data[start + 2] == 11 and bytes(data[start + 3:start + 14]) in GIF_KEPT_APPLICATIONS
    return True


def _gif_without_metadata(data: Buffer, exif: bytes | None) -> bytes:
    kept = [data[start:end] for kind, start, end in _gif_blocks(data) if _gif_keeps(data, kind, start)]
    return data[:_gif_header_end(data)] + b"".join(kept)


# All formats


ENDS = {"image/jpeg": _jpeg_end, "image/png": _png_end, "image/webp": _webp_end, "image/gif": _gif_end}
STRIPPERS = {
    "image/jpeg": _jpeg_without_metadata,
    "image/png": _png_without_metadata,
    "image/webp": _webp_without_metadata,
    "image/gif": _gif_without_metadata,
}


def image_end(data: Buffer, mime: str) -> int | None:
    """Where the image of type `mime` in `data` ends by its own structure; None when the structure is broken."""
    try:
        return ENDS[mime](data)
    except (Malformed, IndexError):
        return None


def orientation_exif(orientation: int | None) -> bytes | None:
    """An EXIF block (TIFF-structured, as PNG and WebP hold it) with nothing in it but the orientation; None for
    the default orientation (1) or a value that is none (EXIF defines 1 to 8)."""
    if orientation not in range(2, 9):
        return None
    from PIL import ExifTags, Image  # only an upload needs Pillow

    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return exif.tobytes()[len(b"Exif\0\0"):]


def without_metadata(data: Buffer, mime: str, orientation: int | None = None) -> bytes:
    """The image of type `mime` in `data`, part for part, without its metadata and without anything after its
    end; an orientation other than the default is kept (see `orientation_exif`). Raises Malformed (or
    IndexError) when the structure is broken; call it on an image already checked whole."""
    return STRIPPERS[mime](data, orientation_exif(orientation))
