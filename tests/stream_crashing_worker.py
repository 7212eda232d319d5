"""A stream worker that dies like a killed process (os._exit, no cleanup) after its first
batch's effects are done and before it acks them. Run by the stream tests in a subprocess."""

import json
import os
import sys
from pathlib import Path

from recsys.stream.config import StreamConfig
from recsys.stream.redis_connection import connect
from stream_worker.consumer_group import ConsumerGroup
from stream_worker.sinks import LakeSink, OnlineFeatureSink
from stream_worker.state_store import StreamState
from stream_worker.worker import StreamWorker


def _die(entry_ids):
    print(f"effects of {len(entry_ids)} entries done; dying before the ack", flush=True)
    os._exit(137)


def main() -> None:
    spec = json.loads(sys.argv[1])
    cfg = StreamConfig(redis_url=spec["redis_url"], embedded_dir=Path(spec["embedded_dir"]),
                       stream=spec["stream"], batch_size=spec["batch_size"], block_ms=50)
    client = connect(cfg)
    group = ConsumerGroup(client, cfg, spec["consumer"])
    group.ensure()
    worker = StreamWorker(group, StreamState(client, cfg), OnlineFeatureSink(Path(spec["repo"])),
                          LakeSink(Path(spec["lake"]), f"stream:{spec['consumer']}"),
                          before_ack=_die)
    for _ in range(100):
        worker.step()
    print("no batch arrived", flush=True)
    sys.exit(3)


if __name__ == "__main__":
    main()
