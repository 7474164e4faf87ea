#!/usr/bin/env python3
"""Write the disk image seeds of the fuzz corpora tests/fuzz/inspect/ and tests/fuzz/fb-disk/.

A seed is HEAD %% TAIL [%% MANIFEST] (tests/fuzz/fuzz.h): the harness makes a 4 MiB image of
zeros with HEAD at its start and TAIL at its end. The tables are built here byte by byte (so
that odd ones can be made: overlapping, past the end, damaged); the filesystems' first sectors
come from the real mkfs.vfat and mke2fs (mkfs.vfat stamps the volume label entry with the
current time: those seeds differ from run to run). Run from the top of the tree:
    python3 tests/fuzz/make-image-seeds.py
Seeds are a few KB each; what fuzzing finds later goes beside them."""
import os
import struct
import subprocess
import tempfile
import uuid
import zlib

SIZE = 4 * 1024 * 1024
SECTOR = 512
LAST = SIZE // SECTOR - 1
SEP = b"\n%%\n"
ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
ROOT_X86 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
LINUX = "0fc63daf-8483-4772-8e79-3d69d8477de4"
SWAP = "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"


def guid(text):
    return uuid.UUID(text).bytes_le


def fs_head(kind, sectors, label):
    """The first bytes of a real filesystem of SECTORS sectors, trailing zeros cut."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fs")
        with open(path, "wb") as f:
            f.truncate(sectors * SECTOR)
        env = dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000", SOURCE_DATE_EPOCH="1700000000")
        if kind == "vfat":
            cmd = ["mkfs.vfat", "-i", "1234abcd", "-n", label, path]
        else:
            cmd = ["mke2fs", "-q", "-t", "ext4", "-b", "1024", "-L", label, "-U",
                   "5b0c4d1e-3333-4f6a-9b8c-0000000000aa", "-E", "hash_seed=5b0c4d1e-3333-4f6a-9b8c-0000000000ab",
                   "-O", "^has_journal", path]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        with open(path, "rb") as f:
            data = f.read(8192 if kind == "vfat" else 4096)
    return data.rstrip(b"\0")


def mbr(records, disk_id=0x9ABCDEF0):
    """records: (status, type, first_lba, sectors)."""
    m = bytearray(SECTOR)
    struct.pack_into("<I", m, 440, disk_id)
    for i, (status, typ, first, n) in enumerate(records):
        struct.pack_into("<B3sB3sII", m, 446 + 16 * i, status, b"\xfe\xff\xff", typ, b"\xfe\xff\xff", first, n)
    m[510:512] = b"\x55\xaa"
    return m


def entries(parts, count):
    """parts: (type, uuid, first, last, attrs, name)."""
    a = bytearray(128 * count)
    for i, (typ, uid, first, last, attrs, name) in enumerate(parts):
        e = guid(typ) + guid(uid) + struct.pack("<QQQ", first, last, attrs)
        e += name.encode("utf-16-le")[:72].ljust(72, b"\0")
        a[128 * i:128 * (i + 1)] = e
    return bytes(a)


def header(my, alt, first_usable, last_usable, array_lba, array, count, disk="6a1c0d5e-7b2f-4c3d-9e8f-0a1b2c3d4e5f"):
    h = bytearray(92)
    struct.pack_into("<8sIII4xQQQQ16sQIII", h, 0, b"EFI PART", 0x10000, 92, 0, my, alt, first_usable, last_usable,
                     guid(disk), array_lba, count, 128, zlib.crc32(array))
    struct.pack_into("<I", h, 16, zlib.crc32(bytes(h)))
    return bytes(h).ljust(SECTOR, b"\0")


def gpt(parts, count=4, fs=(), backup=True, damage_primary=False, last_usable=None):
    """HEAD and TAIL of a 4 MiB disk with a GPT of COUNT entries and FS: (lba, bytes)."""
    array = entries(parts, count)
    asec = (len(array) + SECTOR - 1) // SECTOR
    array = array.ljust(asec * SECTOR, b"\0")
    first_usable = 2 + asec
    if last_usable is None:
        last_usable = LAST - 1 - asec
    head = bytearray(mbr([(0, 0xEE, 1, LAST)]))
    primary = bytearray(header(1, LAST, first_usable, last_usable, 2, array[:128 * count], count))
    if damage_primary:
        primary[20] ^= 0xFF
    head += primary + array
    for lba, data in fs:
        if len(head) < lba * SECTOR:
            head += b"\0" * (lba * SECTOR - len(head))
        head[lba * SECTOR:lba * SECTOR + len(data)] = data
    tail = b""
    if backup:
        tail = array + header(LAST, 1, first_usable, last_usable, LAST - asec, array[:128 * count], count)
    return bytes(head).rstrip(b"\0"), tail.lstrip(b"\0") if tail else b""


def seed(name, head, tail=b"", manifest=None, dirs=("inspect", "fb-disk")):
    data = head + SEP + tail if tail or manifest is not None else head
    if manifest is not None:
        data += SEP + manifest
    for d in dirs:
        if manifest is not None and d != "inspect":
            continue
        with open(os.path.join("tests/fuzz", d, name), "wb") as f:
            f.write(data)


def main():
    vfat = fs_head("vfat", 1016, "ESP")
    ext4 = fs_head("ext4", 1024, "root")
    esp = (ESP, "0f3e1c2a-1111-4a5b-8c9d-00000000e5e5", 8, 1023, 4, "esp")
    root = (ROOT_X86, "0f3e1c2a-2222-4a5b-8c9d-000000000f00", 1024, LAST - 2, 0, "root")

    head, tail = gpt([esp, root], fs=[(8, vfat)])
    seed("gpt-vfat", head, tail)
    with open("tests/fixtures/inspect/manifest-gpt.json", "rb") as f:
        seed("gpt-vfat-manifest", head, tail, f.read())
    seed("gpt-no-backup", head)
    head, tail = gpt([esp, root], fs=[(8, vfat)], damage_primary=True)
    seed("gpt-primary-damaged", head, tail)

    ext_root = (ROOT_X86, "0f3e1c2a-2222-4a5b-8c9d-000000000f00", 8, 1031, 0, "root")
    head, tail = gpt([ext_root], fs=[(8, ext4)], count=8)
    seed("gpt-ext4", head, tail)

    # Odd tables: partitions overlapping, past the end of the disk, names with control
    # characters and non-ASCII, a swap partition last.
    odd = [
        (LINUX, "11111111-2222-3333-4444-555555555555", 100, 700, 0, "a\x1b[2Jb"),
        (LINUX, "11111111-2222-3333-4444-555555555556", 600, 900, 0, "überlapp"),
        (SWAP, "11111111-2222-3333-4444-555555555557", 1000, 1500, 0, "swap"),
    ]
    head, tail = gpt(odd)
    seed("gpt-overlap", head, tail)
    beyond = [(LINUX, "11111111-2222-3333-4444-555555555558", 100, 20000, 0, "big")]
    head, tail = gpt(beyond)
    seed("gpt-beyond-end", head, tail)

    m = mbr([(0x80, 0x0C, 8, 1016), (0, 0x83, 1024, LAST - 1023)])
    head = bytearray(m)
    head += b"\0" * (8 * SECTOR - len(head)) + vfat
    seed("mbr-vfat", bytes(head).rstrip(b"\0"))
    with open("tests/fixtures/inspect/manifest-mbr.json", "rb") as f:
        seed("mbr-vfat-manifest", bytes(head).rstrip(b"\0"), b"", f.read())
    m = mbr([(0x80, 0x0C, 8, 1016), (0, 0x83, 1024, 3072)])
    head = bytearray(m)
    head += b"\0" * (8 * SECTOR - len(head)) + vfat
    seed("mbr-grow", bytes(head).rstrip(b"\0"))
    m = mbr([(0, 0x83, 2048, 12288), (0, 0x05, 100, 200), (0, 0x83, 50, 60), (0x80, 0x07, 150, 1000)])
    seed("mbr-odd", bytes(m))
    seed("pmbr-only", bytes(mbr([(0, 0xEE, 1, LAST)])))
    seed("bare-ext4", b"\0" * 1024 + ext4[1024:] if ext4[:1024] == b"\0" * 1024 else ext4)


if __name__ == "__main__":
    main()
