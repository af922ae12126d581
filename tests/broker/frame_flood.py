"""Run by tests/broker/test_shedding.py in a child process, so that the flood does not share the
broker's event loop: ``MIRRORS`` clients publish 64 KB QoS 0 frames to ``mirrors/m<i>/frame``
as fast as they can for ``SECONDS``, and one subscriber of ``mirrors/+/frame`` reads a frame
every 50 ms (paho's reading thread sleeps, so TCP pushes back on the broker). Prints the frames
sent and read.

    python -m tests.broker.frame_flood PORT MIRRORS SECONDS
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

FRAME = b"\xff" * 64_000
USER, PASSWORD = "svc", "svc-secret"


def client(name: str, port: int) -> mqtt.Client:
    paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
    paho.username_pw_set(USER, PASSWORD)
    paho.connect("127.0.0.1", port)
    return paho


def flood(port: int, index: int, until: float, sent: list[int]) -> None:
    paho = client(f"flood-{index}", port)
    paho.loop_start()
    while time.monotonic() < until:
        paho.publish(f"mirrors/m{index}/frame", FRAME, qos=0)
        sent[index] += 1
        time.sleep(0.002)  # lets paho's thread write
    paho.loop_stop()
    paho.disconnect()


def main() -> None:
    port, mirrors, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    read = [0]

    def slowly(paho: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        read[0] += 1
        time.sleep(0.05)

    slow = client("flood-slow-reader", port)
    slow.on_message = slowly
    slow.subscribe("mirrors/+/frame", qos=0)
    slow.loop_start()
    sent = [0] * mirrors
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=flood, args=(port, index, until, sent))
               for index in range(mirrors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"sent {sum(sent)} read {read[0]}", flush=True)
    os._exit(0)  # at once: the slow reader would read on through its buffers first


if __name__ == "__main__":
    main()
