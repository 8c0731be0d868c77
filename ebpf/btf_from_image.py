#!/usr/bin/env python3
"""Copies the BTF of a kernel image (a Debian arm64 vmlinuz: an uncompressed,
or gzip-compressed, Image) into a raw BTF file that `bpftool btf dump file`
reads, so that the object can be built for a kernel that is not running.

The kernel links its BTF into the image as one blob (`.BTF`, between
__start_BTF and __stop_BTF); a raw Image has no section table to find it
by, so the blob is found by its header: the magic 0xeB9F, version 1, a
24-byte header, types first and strings right after them. Exactly one such
blob of more than a megabyte must be found.

usage: btf_from_image.py VMLINUZ OUT
"""

import gzip
import struct
import sys

MAGIC = b"\x9f\xeb\x01\x00"  # 0xeB9F, little-endian, version 1, flags 0
HEADER = 24


def blobs(image):
    at = image.find(MAGIC)
    while at >= 0:
        if at + HEADER <= len(image):
            hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<5I", image, at + 4)
            size = HEADER + str_off + str_len
            if (hdr_len == HEADER and type_off == 0 and str_off == type_len and type_len > 1 << 20
                    and at + size <= len(image)):
                yield at, size
        at = image.find(MAGIC, at + 1)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    with open(sys.argv[1], "rb") as f:
        image = f.read()
    if image[:2] == b"\x1f\x8b":
        image = gzip.decompress(image)
    found = list(blobs(image))
    if len(found) != 1:
        sys.exit(f"error: {sys.argv[1]}: expected one BTF blob of the kernel, found {len(found)}")
    at, size = found[0]
    with open(sys.argv[2], "wb") as f:
        f.write(image[at:at + size])


if __name__ == "__main__":
    main()
