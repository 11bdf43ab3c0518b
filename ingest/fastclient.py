"""A paho Client that reads the socket in large chunks and acknowledges in bulk.

paho reads every packet with three or more ``recv`` calls (one byte of command, the
remaining-length bytes one by one, then the body), builds an MQTT v5 Properties object for
every PUBLISH even when it carries none, and wakes its loop once per queued acknowledgement. At ten thousand messages a second those system calls are a large share of
the ingestor's CPU. This subclass keeps paho's protocol handling untouched and changes only
that: ``_sock_recv`` serves paho's small reads from a 64 KiB buffer, ``loop_read`` keeps going
while the buffer holds data (select cannot see it), ``_handle_publish`` decodes a QoS 0/1
PUBLISH without properties directly (anything else goes to paho's own decoder), and
:meth:`ack_many` queues one run of PUBACKs with a single wake-up. These rest on paho 2.x
internals (``_sock_recv``, ``_in_packet``, ``_handle_on_message``, ``_packet_queue``); every
e2e test of the ingestor runs through them.
"""

from __future__ import annotations

import struct
import time
from typing import Iterable

import paho.mqtt.client as mqtt

READ_CHUNK = 64 * 1024
PUBACK = 0x40


class BufferedClient(mqtt.Client):
    """paho's Client with buffered socket reads and bulk acknowledgements."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(READ_CHUNK)  # raises BlockingIOError when nothing is there
            if not data:
                return data  # the connection closed
            self._rbuf, self._rpos = data, 0
        chunk = self._rbuf[self._rpos:self._rpos + bufsize]
        self._rpos += len(chunk)
        return chunk

    def buffered(self) -> int:
        return len(self._rbuf) - self._rpos

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        # Packets already in our buffer do not make the socket readable: handle them now.
        while rc == mqtt.MQTT_ERR_SUCCESS and self._sock is not None and self.buffered() > 0:
            rc = super().loop_read(max_packets)
        return rc

    def reconnect(self) -> mqtt.MQTTErrorCode:
        self._rbuf, self._rpos = b"", 0  # bytes of the old connection mean nothing now
        return super().reconnect()

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        header = self._in_packet["command"]
        packet = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        try:
            if qos == 2:
                raise IndexError
            slen = (packet[0] << 8) | packet[1]
            pos = 2 + slen
            topic = bytes(packet[2:pos])
            if not topic or pos > len(packet):
                raise IndexError  # paho's decoder names the problem
            mid = 0
            if qos:
                mid = (packet[pos] << 8) | packet[pos + 1]
                pos += 2
            if self._protocol == mqtt.MQTTv5:
                if packet[pos] != 0:
                    raise IndexError  # has properties (topic alias, user properties...)
                pos += 1
        except IndexError:
            return super()._handle_publish()
        message = mqtt.MQTTMessage(mid=mid, topic=topic)
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.payload = bytes(packet[pos:])
        message.timestamp = time.monotonic()
        self._handle_on_message(message)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return mqtt.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Iterable[int]) -> None:
        """PUBACK every message id, in order, as one queued write."""
        mids = list(mids)
        if not mids:
            return
        queue = getattr(self, "_packet_queue", None)
        if queue is None:
            for mid in mids:
                self.ack(mid, 1)
            return
        # The two-byte form (no reason code) means success in MQTT 3.1.1 and 5 alike.
        blob = b"".join([struct.pack("!BBH", PUBACK, 2, mid) for mid in mids])
        queue(PUBACK, blob, 0, 0)
