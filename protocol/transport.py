"""Transports: bytes in and out of a port, nothing else. Framing lives in :mod:`protocol.framing`.

Every transport implements :class:`Transport` (``open/send/receive/close``). The host side has
one implementation for every pyserial URL (:class:`SerialTransport`): ``loop://``, a pty path
(the way a USB-serial board appears), ``socket://127.0.0.1:PORT`` and a real device path, with
the same code. The board side of an emulated link listens on a pty (:class:`PtyServer`) or a
TCP port (:class:`SocketServer`); a board in the host's own process is reached through
:class:`InProcessTransport`. :class:`LinkEmulator` wraps any transport with the link fault
domain: baud-rate throttling (a UART moves ``baud / 10`` bytes/s: 8 data bits plus start and
stop bit), seeded byte drop and byte corruption, and a fixed delay.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import time
import tty
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import serial

from protocol.errors import LinkFaultError, TransportError
from protocol.link_faults import LINK_FAULT_KINDS, check_link_magnitude, link_fault_kind

log = logging.getLogger(__name__)

DEFAULT_BAUD = 921_600
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit


@runtime_checkable
class Transport(Protocol):
    """A byte pipe to the other side. ``receive`` returns ``b""`` when ``timeout`` passes."""

    #: Bytes per second the link carries, if known (used to size timeouts); None: unlimited.
    bytes_per_second: float | None

    def open(self) -> None: ...

    def send(self, data: bytes) -> None: ...

    def receive(self, max_bytes: int, timeout: float) -> bytes: ...

    def close(self) -> None: ...


class SerialTransport:
    """Any pyserial URL or device path, via ``serial.serial_for_url``."""

    def __init__(self, url: str, baudrate: int = DEFAULT_BAUD, **options: Any) -> None:
        self.url = url
        self.baudrate = baudrate
        # Only a real UART is limited by its baud rate; loop, socket and pty move bytes at once.
        emulated = url.startswith(("loop://", "socket://")) or "/pts/" in url
        self.bytes_per_second = None if emulated else baudrate / BITS_PER_BYTE
        self._options = options
        self._port: serial.SerialBase | None = None
        self._fd: int | None = None
        self._timeout: float | None = None

    def open(self) -> None:
        try:
            port = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=0, do_not_open=True, **self._options
            )
            port.open()
        except (serial.SerialException, ValueError, OSError) as error:
            raise TransportError(f"cannot open {self.url}: {error}") from None
        self._port = port
        try:
            self._fd = port.fileno()
            self._timeout = 0.0
        except (AttributeError, NotImplementedError, OSError, serial.SerialException):
            self._fd = None
        with contextlib.suppress(serial.SerialException, NotImplementedError, OSError):
            port.reset_input_buffer()  # answers meant for an earlier connection

    def send(self, data: bytes) -> None:
        try:
            self._require().write(data)
        except (serial.SerialException, OSError) as error:
            raise TransportError(f"cannot write to {self.url}: {error}") from None

    def receive(self, max_bytes: int, timeout: float) -> bytes:
        port = self._require()
        try:
            if self._fd is not None:
                # A non-blocking port plus select: one wake-up per burst, whatever the URL.
                ready, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
                return port.read(max_bytes) if ready else b""
            if self._timeout != timeout:
                port.timeout = self._timeout = timeout
            data = port.read(1)
            waiting = port.in_waiting if data else 0
            return data + port.read(min(waiting, max_bytes - 1)) if waiting else data
        except (serial.SerialException, OSError) as error:
            raise TransportError(f"cannot read from {self.url}: {error}") from None

    def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
        self._port = None

    def _require(self) -> serial.SerialBase:
        if self._port is None:
            raise TransportError(f"port {self.url} is not open; call open() first.")
        return self._port


class PtyServer:
    """Board side of a pty pair: the host opens :attr:`url` like a USB-serial device."""

    bytes_per_second: float | None = None

    def __init__(self) -> None:
        self._master: int | None = None
        self._slave: int | None = None
        self.url = ""

    def open(self) -> None:
        self._master, self._slave = os.openpty()
        # Raw mode: no echo, no CR/LF translation; and keeping the slave open ourselves means a
        # host that disconnects leaves the master readable (no EIO) until the next one opens it.
        tty.setraw(self._slave)
        self.url = os.ttyname(self._slave)

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._require(), view)
            view = view[written:]

    def receive(self, max_bytes: int, timeout: float) -> bytes:
        master = self._require()
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(master, max_bytes)
        except OSError as error:
            if error.errno != errno.EIO:
                raise
            time.sleep(timeout)  # no host on the other end right now
            return b""

    def close(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def _require(self) -> int:
        if self._master is None:
            raise TransportError("pty is not open; call open() first.")
        return self._master


class SocketServer:
    """Board side of ``socket://127.0.0.1:PORT``: one host at a time, the next after it leaves."""

    bytes_per_second: float | None = None

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._listener: socket.socket | None = None
        self._connection: socket.socket | None = None
        self.url = ""

    def open(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(self._address)
        listener.listen(1)
        self._listener = listener
        host, port = listener.getsockname()
        self.url = f"socket://{host}:{port}"

    def send(self, data: bytes) -> None:
        if self._connection is None:
            return  # nobody to answer: the host retries after it reconnects
        try:
            self._connection.sendall(data)
        except OSError:
            self._drop()

    def receive(self, max_bytes: int, timeout: float) -> bytes:
        if self._listener is None:
            raise TransportError("socket server is not open; call open() first.")
        if self._connection is None:
            ready, _, _ = select.select([self._listener], [], [], timeout)
            if not ready:
                return b""
            self._connection, _ = self._listener.accept()
            self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return b""
        ready, _, _ = select.select([self._connection], [], [], timeout)
        if not ready:
            return b""
        try:
            data = self._connection.recv(max_bytes)
        except OSError:
            data = b""
        if not data:
            self._drop()
        return data

    def close(self) -> None:
        self._drop()
        if self._listener is not None:
            self._listener.close()
        self._listener = None

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
        self._connection = None


class InProcessTransport:
    """A board in this process as a transport: ``send`` hands the bytes to the board's
    ``feed`` (e.g. ``Responder.feed``), and its answers wait in a buffer until ``receive``
    takes them, like bytes in a port's receive buffer.

    (Not pyserial's ``loop://``: its bounded queue blocks the one thread that both writes an
    answer and would read it, as soon as an answer is larger than the queue.)
    """

    bytes_per_second: float | None = None

    def __init__(self, feed: Callable[[bytes], bytes | None]) -> None:
        self._feed = feed
        self._pending = bytearray()

    def open(self) -> None:
        self._pending.clear()

    def send(self, data: bytes) -> None:
        self._pending += self._feed(data) or b""

    def receive(self, max_bytes: int, timeout: float) -> bytes:
        out = bytes(self._pending[:max_bytes])
        del self._pending[:max_bytes]
        return out

    def close(self) -> None:
        self._pending.clear()


class LinkEmulator:
    """Wraps a transport with the link's faults: throttling, byte drop and corruption, delay.

    Faults hit both directions: bytes written (before they reach the port) and bytes read.
    ``baud`` throttles both directions to ``baud / 10`` bytes/s like a UART: a write returns
    when its last byte would have left the wire, a read hands bytes over no earlier than they
    would have arrived. Every random choice comes from ``numpy.random.default_rng(seed)``.
    """

    def __init__(
        self,
        inner: Transport,
        *,
        baud: int | None = None,
        drop_rate: float = 0.0,
        corrupt_rate: float = 0.0,
        delay_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.inner = inner
        self.baud = baud
        self.bytes_per_second = baud / BITS_PER_BYTE if baud else inner.bytes_per_second
        self.drop_rate = drop_rate
        self.corrupt_rate = corrupt_rate
        self.delay_s = delay_s
        self._rng = np.random.default_rng(seed)
        self._tx_free_at = 0.0
        self._rx_pending = bytearray()
        self._rx_head_at = 0.0
        self.dropped = 0
        self.corrupted = 0
        self._base = {"drop_rate": drop_rate, "corrupt_rate": corrupt_rate, "delay_s": delay_s}
        self._base["baud"] = baud or 0
        for kind, spec in LINK_FAULT_KINDS.items():
            check_link_magnitude(kind, self._base[spec.attribute])

    def apply_fault(self, record: Mapping[str, Any], active: bool = True) -> None:
        """Apply a ``link`` fault record (drop, corrupt, delay, throttle); ``active=False``
        lifts it again, back to the setting the emulator was made with."""
        if record.get("domain") != "link":
            raise LinkFaultError(f"the link emulator applies link faults, not {record!r}.")
        kind = record.get("kind")
        attribute = link_fault_kind(kind).attribute
        value = record.get("magnitude") if active else self._base[attribute]
        check_link_magnitude(kind, value)
        if attribute == "baud":
            self.baud = int(value) or None
            self.bytes_per_second = (
                self.baud / BITS_PER_BYTE if self.baud else self.inner.bytes_per_second
            )
        else:
            setattr(self, attribute, float(value))

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def send(self, data: bytes) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.baud:
            # The bytes are on the far side only once the last one has been clocked out.
            now = time.monotonic()
            self._tx_free_at = max(self._tx_free_at, now) + len(data) / self.bytes_per_second
            _sleep_until(self._tx_free_at)
        damaged = self._damage(data)
        if damaged:
            self.inner.send(damaged)

    def receive(self, max_bytes: int, timeout: float) -> bytes:
        if not self.baud:
            return self._damage(self.inner.receive(max_bytes, timeout))
        deadline = time.monotonic() + timeout
        if not self._rx_pending:
            fresh = self.inner.receive(max_bytes, timeout)
            if not fresh:
                return b""
            # The line is busy until the previous burst has arrived; this one queues behind it.
            self._rx_head_at = max(self._rx_head_at, time.monotonic())
            self._rx_pending += fresh
        else:
            self._rx_pending += self.inner.receive(max_bytes, 0.0)
        count = min(len(self._rx_pending), max_bytes)
        done_at = self._rx_head_at + count / self.bytes_per_second
        if done_at > deadline:
            _sleep_until(deadline)
            count = min(count, int((deadline - self._rx_head_at) * self.bytes_per_second))
            if count <= 0:
                return b""
        else:
            _sleep_until(done_at)
        out = bytes(self._rx_pending[:count])
        del self._rx_pending[:count]
        self._rx_head_at += count / self.bytes_per_second
        return self._damage(out)

    def _damage(self, data: bytes) -> bytes:
        if not data or not (self.drop_rate or self.corrupt_rate):
            return data
        array = np.frombuffer(data, dtype=np.uint8).copy()
        corrupt = self._rng.random(array.size) < self.corrupt_rate
        array[corrupt] ^= self._rng.integers(1, 256, int(corrupt.sum()), dtype=np.uint8)
        keep = self._rng.random(array.size) >= self.drop_rate
        self.corrupted += int(corrupt.sum())
        self.dropped += int(array.size - keep.sum())
        return array[keep].tobytes()


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def open_transport(url: str, baudrate: int = DEFAULT_BAUD, **link: Any) -> Transport:
    """An opened transport for ``url``; any ``link`` options wrap it in a :class:`LinkEmulator`."""
    transport: Transport = SerialTransport(url, baudrate)
    if link:
        transport = LinkEmulator(transport, **link)
    transport.open()
    return transport
