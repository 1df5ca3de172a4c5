"""Strict MCAP record framing: the one place the project turns MCAP bytes into records.

Every reader of raw logs is built on this module: the linear scan ingest uses
(:class:`~hvla_platform.lib.formats.mcap.index.McapScan`), the streamed record iterator and the
indexed reader of :mod:`hvla_platform.lib.formats.mcap.records` (which conversion uses and the MCAP
conformance suite checks record for record). mcap's record classes parse the fields; the framing
around them is done here, so that:

* every record, and every record inside a chunk, must fit in the bytes that remain; a record is
  parsed from exactly its declared length (bytes past its known fields are skipped, as the spec
  asks; a record that needs more is corrupt), and unknown opcodes are skipped by length;
* a cut file is reported as *truncated* at a byte offset, never read short;
* no record, and no chunk once decompressed, may exceed ``max_record_bytes``
  (:data:`MAX_RECORD_BYTES`, reason ``too_large``): the size is checked before anything is
  allocated;
* chunk CRCs, the data-section CRC (``DataEnd``) and the summary CRC (``Footer``) are checked when
  the writer stored them (a stored 0 means "no CRC", as the MCAP specification says);
* a chunk compression the spec does not define is an error.

Failures are :class:`~hvla_platform.lib.formats.mcap.errors.RawLogError` with reason ``unreadable`` (or
``too_large``); the detail names the record and its byte offset.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import lz4.frame
import zstandard
from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import (Attachment, AttachmentIndex, Channel, Chunk, ChunkIndex, DataEnd, Footer, Header,
                          McapRecord, Message, MessageIndex, Metadata, MetadataIndex, Schema, Statistics,
                          SummaryOffset)

from hvla_platform.lib.formats.mcap.errors import RawLogError

#: Largest record (or decompressed chunk) any reader will load, bytes. A compressed camera frame
#: is well under 1 MiB and a raw 4K RGB frame is 24 MiB; anything above this is refused as
#: ``too_large`` instead of being allocated.
MAX_RECORD_BYTES = 64 * 2**20

MAGIC = b"\x89MCAP0\r\n"
_FOOTER_BODY = 8 + 8 + 4  # summary_start, summary_offset_start, summary_crc
_FOOTER_RECORD = 9 + _FOOTER_BODY
_COMPRESSIONS = frozenset(["", "zstd", "lz4"])
_OPCODE_NAMES = {int(o): o.name.title().replace("_", "") for o in Opcode}  # CHUNK_INDEX -> ChunkIndex

# Every record type of MCAP major version 0, parsed by mcap's classes (Message needs its length).
_CLASSES: dict[int, Any] = {
    Opcode.HEADER: Header, Opcode.FOOTER: Footer, Opcode.SCHEMA: Schema, Opcode.CHANNEL: Channel,
    Opcode.MESSAGE: Message, Opcode.CHUNK: Chunk, Opcode.MESSAGE_INDEX: MessageIndex,
    Opcode.CHUNK_INDEX: ChunkIndex, Opcode.ATTACHMENT: Attachment, Opcode.ATTACHMENT_INDEX: AttachmentIndex,
    Opcode.STATISTICS: Statistics, Opcode.METADATA: Metadata, Opcode.METADATA_INDEX: MetadataIndex,
    Opcode.SUMMARY_OFFSET: SummaryOffset, Opcode.DATA_END: DataEnd,
}
#: Records a Chunk may contain (MCAP spec, "Chunk"); anything else inside a chunk is skipped.
CHUNK_OPCODES = frozenset([Opcode.SCHEMA, Opcode.CHANNEL, Opcode.MESSAGE])


#: A Message record's fixed fields: channel_id u16, sequence u32, log_time u64, publish_time u64 (MCAP spec).
_MESSAGE_HEAD = struct.Struct("<HIQQ").unpack_from


class _Overrun(Exception):
    """A field needs more bytes than its record holds."""


class _StrictStream(ReadDataStream):
    """A :class:`ReadDataStream` over one record body that never returns a short read."""

    def __init__(self, data: bytes | memoryview):
        super().__init__(io.BytesIO(data))
        self.size = len(data)

    def read(self, length: int) -> bytes:
        if length < 0 or length > self.size - self.count:
            raise _Overrun(f"a field needs {length} byte(s), {self.size - self.count} left in the record")
        return super().read(length)


def record_name(opcode: int) -> str:
    """``"Chunk record"``, ``"unknown record (opcode 0x80)"``..."""
    return f"{_OPCODE_NAMES[opcode]} record" if opcode in _OPCODE_NAMES else f"unknown record (opcode 0x{opcode:02x})"


class McapFile:
    """An open MCAP file read with strict framing (use :func:`open_mcap`).

    Attributes:
        path: the file.
        f: its binary handle.
        size: its size, bytes.
        max_record_bytes: largest record or decompressed chunk that will be loaded.
    """

    def __init__(self, path: Path, f: BinaryIO, size: int, max_record_bytes: int):
        self.path, self.f, self.size, self.max_record_bytes = path, f, size, max_record_bytes

    def err(self, reason: str, detail: str) -> RawLogError:
        return RawLogError(self.path, reason, detail)

    # ---- magic and footer ----------------------------------------------------------------
    def check_magic(self) -> None:
        """Check the leading magic; leaves the handle just after it."""
        self.f.seek(0)
        magic = self.f.read(len(MAGIC))
        if magic != MAGIC:
            raise self.err("unreadable", f"not an MCAP file: it starts with {magic!r}, not the MCAP magic")

    def read_footer(self) -> tuple[Footer, int]:
        """Check both magics and return the Footer and its byte offset (no linear read)."""
        if self.size < 2 * len(MAGIC) + _FOOTER_RECORD:
            raise self.err("unreadable", f"file of {self.size} bytes is too short to be MCAP")
        self.check_magic()
        footer_start = self.size - len(MAGIC) - _FOOTER_RECORD
        self.f.seek(footer_start)
        tail = self.f.read(_FOOTER_RECORD + len(MAGIC))
        if tail[_FOOTER_RECORD:] != MAGIC:
            raise self.err("unreadable", "truncated: no MCAP magic at the end of the file")
        opcode, length = struct.unpack_from("<BQ", tail)
        if opcode != Opcode.FOOTER or length != _FOOTER_BODY:
            raise self.err("unreadable", "no Footer record before the closing magic")
        return Footer(*struct.unpack_from("<QQI", tail, 9)), footer_start

    def check_summary(self, footer: Footer, footer_start: int) -> None:
        """Check that the summary lies inside the file, and ``Footer.summary_crc`` when non-zero.

        The CRC covers the bytes from the summary start through ``summary_offset_start`` in the
        Footer (with no summary section: the Footer's first fields alone).
        """
        if footer.summary_start and not len(MAGIC) <= footer.summary_start <= footer_start:
            raise self.err("unreadable", f"Footer points to a summary at byte {footer.summary_start}, "
                                         f"outside the file ({self.size} bytes)")
        if footer.summary_crc == 0:
            return
        start = footer.summary_start or footer.summary_offset_start or footer_start
        if not len(MAGIC) <= start <= footer_start:
            raise self.err("unreadable", f"Footer points to a summary offset at byte {start}, outside the file "
                                         f"({self.size} bytes)")
        self.f.seek(start)
        crc, left = 0, footer_start + 9 + 8 + 8 - start
        while left > 0:
            block = self.f.read(min(left, 1 << 20))
            if not block:
                raise self.err("unreadable", "truncated: the file ends inside the summary section")
            crc, left = zlib.crc32(block, crc), left - len(block)
        if crc != footer.summary_crc:
            raise self.err("unreadable", f"CRC mismatch of the summary section: stored 0x{footer.summary_crc:08x}, "
                                         f"computed 0x{crc:08x}; the file is corrupt")

    # ---- top-level records ------------------------------------------------------------------
    def _frame(self, pos: int, end: int, within: str) -> tuple[int, int]:
        """Read the 9-byte record header at ``pos`` (the handle is there); check the body fits."""
        head = self.f.read(9)
        if len(head) < 9:
            raise self.err("unreadable", f"truncated: {within} ends at byte {end} "
                                         f"(a record header needs 9 bytes at byte {pos}, {end - pos} left)")
        opcode, length = struct.unpack("<BQ", head)
        if length > self.max_record_bytes:
            raise self.err("too_large", f"{record_name(opcode)} at byte {pos} is {length} bytes, more than the "
                                        f"{self.max_record_bytes}-byte record limit; not loaded")
        if length > end - pos - 9:
            raise self.err("unreadable", f"truncated: {record_name(opcode)} at byte {pos} declares {length} bytes "
                                         f"but {within} ends {end - pos - 9} bytes later (at byte {end})")
        return opcode, length

    def records(self, start: int, end: int | None = None) -> Iterator[tuple[int, int, bytes]]:
        """``(offset, opcode, body)`` of the top-level records from ``start``.

        With ``end`` (a summary section): the records up to exactly ``end``. Without: up to and
        including the Footer, followed by the closing magic and nothing else (a linear scan).
        """
        within = "the file" if end is None else "the summary section"
        limit = self.size if end is None else end
        pos = start
        self.f.seek(pos)
        while end is None or pos < end:
            if end is None and self.size - pos < 9:
                raise self.err("unreadable", f"truncated: the file ends at byte {self.size} with no Footer record "
                                             f"(a record header needs 9 bytes at byte {pos}, {self.size - pos} left)")
            opcode, length = self._frame(pos, limit, within)
            yield pos, opcode, self.f.read(length)
            pos += 9 + length
            if end is None and opcode == Opcode.FOOTER:
                self.f.seek(pos)
                tail = self.f.read(len(MAGIC) + 1)
                if tail[: len(MAGIC)] != MAGIC:
                    raise self.err("unreadable", f"truncated: no closing magic after the Footer at byte {pos} "
                                                 f"(found {tail[:len(MAGIC)]!r})")
                if len(tail) > len(MAGIC):
                    raise self.err("unreadable", f"{self.size - pos - len(MAGIC)} unexpected byte(s) after the "
                                                 f"closing magic at byte {pos + len(MAGIC)}")
                return

    def record_at(self, pos: int, end: int) -> tuple[int, bytes]:
        """``(opcode, body)`` of the record at byte ``pos``, which must end by ``end``."""
        self.f.seek(pos)
        opcode, length = self._frame(pos, end, "the data section")
        return opcode, self.f.read(length)

    def parse(self, opcode: int, body: bytes | memoryview, where: str) -> McapRecord | None:
        """Parse a record body with mcap's class for ``opcode`` (``None`` for an unknown opcode)."""
        cls = _CLASSES.get(opcode)
        if cls is None:
            return None
        try:
            if opcode == Opcode.MESSAGE:  # the hot record: the fields of mcap's Message.read, in one unpack
                if len(body) < 22:
                    raise _Overrun(f"{len(body)} bytes, fewer than its 22-byte header")
                channel_id, sequence, log_time, publish_time = _MESSAGE_HEAD(body, 0)
                return Message(channel_id=channel_id, log_time=log_time, data=bytes(body[22:]),
                               publish_time=publish_time, sequence=sequence)
            return cls.read(_StrictStream(body))
        except (_Overrun, struct.error, UnicodeDecodeError, ValueError) as exc:
            raise self.err("unreadable", f"corrupt {cls.__name__} record {where}: {exc}") from exc

    # ---- chunks ---------------------------------------------------------------------------
    def chunk_data(self, chunk: Chunk, where: str) -> bytes:
        """Decompress ``chunk`` (at most ``max_record_bytes``) and check its CRC when stored."""
        usize, compression = chunk.uncompressed_size, chunk.compression
        if usize > self.max_record_bytes:
            raise self.err("too_large", f"Chunk {where} decompresses to {usize} bytes, more than the "
                                        f"{self.max_record_bytes}-byte record limit; not decompressed")
        if compression not in _COMPRESSIONS:
            raise self.err("unreadable", f"Chunk {where}: unknown chunk compression {compression!r}")
        try:
            if compression == "":
                out = chunk.data
            elif compression == "zstd":
                reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(chunk.data), read_across_frames=True)
                out = reader.read(usize + 1)
            else:
                with lz4.frame.open(io.BytesIO(chunk.data), "rb") as lz:
                    out = lz.read(usize + 1)
        except (zstandard.ZstdError, RuntimeError, OSError, EOFError) as exc:
            raise self.err("unreadable", f"corrupt Chunk {where}: {compression} decompression failed: "
                                         f"{type(exc).__name__}: {exc}") from exc
        if len(out) != usize:
            got = f"more than {usize}" if len(out) > usize else str(len(out))
            raise self.err("unreadable", f"corrupt Chunk {where}: decompresses to {got} bytes, its header "
                                         f"declares {usize}")
        if chunk.uncompressed_crc and zlib.crc32(out) != chunk.uncompressed_crc:
            raise self.err("unreadable", f"CRC mismatch in Chunk {where}: stored 0x{chunk.uncompressed_crc:08x}, "
                                         f"computed 0x{zlib.crc32(out):08x}; the chunk's content is corrupt")
        return out

    def chunk_records(self, chunk: Chunk, offset: int) -> Iterator[McapRecord]:
        """The Schema/Channel/Message records inside ``chunk`` (the Chunk record at byte
        ``offset``), each parsed by its declared length; other inner records are skipped."""
        where, inner = f"at byte {offset}", f"in the Chunk at byte {offset}"
        view = memoryview(self.chunk_data(chunk, where))
        pos = 0
        while pos < len(view):
            if len(view) - pos < 9:
                raise self.err("unreadable", f"corrupt Chunk {where}: {len(view) - pos} stray byte(s) at its end")
            opcode, length = struct.unpack_from("<BQ", view, pos)
            if length > len(view) - pos - 9:
                raise self.err("unreadable", f"corrupt Chunk {where}: {record_name(opcode)} at chunk byte {pos} "
                                             f"declares {length} bytes, {len(view) - pos - 9} left in the chunk")
            if opcode in CHUNK_OPCODES:
                yield self.parse(opcode, view[pos + 9: pos + 9 + length], inner)
            pos += 9 + length


def open_mcap(path: str | os.PathLike[str], max_record_bytes: int = MAX_RECORD_BYTES) -> McapFile:
    """Open ``path`` for strict reading (close it with ``.f.close()`` or use ``with ... .f``)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        f = open(path, "rb")
    except OSError as exc:
        raise RawLogError(path, "unreadable", f"cannot open file: {exc}") from exc
    return McapFile(path, f, size, max_record_bytes)


class LinearScan:
    """Every record of an MCAP file, in file order, validated (see the module docstring).

    Besides the framing: the first record must be a Header, no Message or Chunk may follow
    DataEnd, and the data-section CRC and the summary CRC are checked (the latter once the Footer
    is reached, before it is yielded). After a complete iteration ``chunk_count`` counts the
    chunks decoded, ``chunks_without_crc`` those whose writer stored no CRC.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_record_bytes: int = MAX_RECORD_BYTES):
        self.path = Path(path)
        self.max_record_bytes = max_record_bytes
        self.chunk_count = 0
        self.chunks_without_crc = 0

    def records(self, *, emit_chunks: bool = False) -> Iterator[tuple[str, McapRecord]]:
        """Yield ``(where, record)``; ``where`` is ``"at byte N"`` or ``"in the Chunk at byte N"``.

        With ``emit_chunks`` a Chunk is yielded as such (its content neither decoded nor checked);
        otherwise the Schema/Channel/Message records inside it are yielded in its place.

        Raises:
            RawLogError: ``unreadable`` or ``too_large``, when the bad part is reached.
        """
        mf = open_mcap(self.path, self.max_record_bytes)
        with mf.f:
            mf.check_magic()
            crc: int | None = zlib.crc32(MAGIC)  # None once DataEnd is passed
            first = True
            for pos, opcode, body in mf.records(len(MAGIC)):
                where = f"at byte {pos}"
                if first and opcode != Opcode.HEADER:
                    raise mf.err("unreadable", f"the first record is {record_name(opcode)}, not a Header")
                first = False
                if opcode == Opcode.DATA_END:
                    stored = struct.unpack_from("<I", body, 0)[0] if len(body) >= 4 else 0
                    if stored and stored != crc:
                        raise mf.err("unreadable", f"CRC mismatch of the data section (DataEnd {where}): stored "
                                                   f"0x{stored:08x}, computed 0x{crc:08x}; the file is corrupt")
                    crc = None
                elif crc is not None:
                    crc = zlib.crc32(body, zlib.crc32(struct.pack("<BQ", opcode, len(body)), crc))
                elif opcode in (Opcode.MESSAGE, Opcode.CHUNK):
                    raise mf.err("unreadable", f"{record_name(opcode)} {where} is inside the summary section")
                record = mf.parse(opcode, body, where)
                if record is None:
                    continue
                if isinstance(record, Chunk) and not emit_chunks:
                    self.chunk_count += 1
                    self.chunks_without_crc += record.uncompressed_crc == 0
                    inner = f"in the Chunk at byte {pos}"
                    for rec in mf.chunk_records(record, pos):
                        yield inner, rec
                    continue
                if isinstance(record, Footer):
                    mf.check_summary(record, pos)
                yield where, record
