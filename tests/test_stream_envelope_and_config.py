"""The stream's entry format and its typed configuration: bad input is named."""

from __future__ import annotations

import pytest

from recsys.errors import ConfigError
from recsys.stream.config import StreamConfig, load_stream_config
from recsys.stream.envelope import BadEntry, decode, encode


def test_round_trip():
    import datetime as dt

    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    fields = encode("event", {"event_id": "e1", "timestamp": when, "rating": None,
                              "tags": ("a",)}, 1234)
    env = decode(b"1-0", fields)
    assert (env.entry_id, env.kind, env.accepted_at_us) == ("1-0", "event", 1234)
    assert env.body == {"event_id": "e1", "timestamp": "2026-01-02T03:04:05+00:00",
                        "tags": ["a"]}


@pytest.mark.parametrize("fields, reason", [
    ({b"body": b"{}", b"accepted_at_us": b"1"}, "entry has no 'kind' field; fields: "
                                                "['accepted_at_us', 'body']"),
    ({b"kind": b"user", b"body": b"{}"},
     "entry kind must be one of ['event', 'item', 'exposure', 'decision'], got 'user'"),
    ({b"kind": b"event", b"body": b"{oops"}, "entry body is not valid JSON: Expecting property "
                                             "name enclosed in double quotes at position 1"),
    ({b"kind": b"event", b"body": b"[1]"}, "entry body must be a JSON object, got list"),
    ({b"kind": b"event", b"body": b"{}", b"accepted_at_us": b"soon"},
     "entry accepted_at_us must be an integer, got b'soon'"),
    ({b"kind": b"\xff", b"body": b"{}"}, "entry field 'kind' is not UTF-8"),
])
def test_bad_entries_are_named(fields, reason):
    with pytest.raises(BadEntry) as err:
        decode("1-0", fields)
    assert str(err.value) == reason


def test_encode_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        encode("user", {}, 0)


def test_encode_writes_numpy_and_pandas_values_and_names_what_it_cannot():
    import numpy as np
    import pandas as pd

    fields = encode("exposure", {"score": np.float64(0.5), "rank": np.int64(3),
                                 "timestamp": pd.Timestamp("2026-01-02T03:04:05Z"),
                                 "score_nan": float("nan")}, 1)
    assert decode("1-0", fields).body == {"score": 0.5, "rank": 3, "score_nan": None,
                                          "timestamp": "2026-01-02T03:04:05+00:00"}
    with pytest.raises(TypeError, match="cannot write field 'tags' into a stream entry: a set "
                                        "is not JSON"):
        encode("event", {"tags": {"a"}}, 0)


def test_a_trusted_append_refuses_an_unknown_kind_before_writing_anything():
    from recsys.stream.producer import StreamProducer

    class Unreachable:  # the kinds are checked before any Redis call
        def pipeline(self, **_):
            raise AssertionError("nothing may be written")

    producer = StreamProducer(Unreachable(), StreamConfig())
    with pytest.raises(ValueError, match=r"kind must be one of \[.*\], got 'user'"):
        producer.append_kinds([("exposure", [{}]), ("user", [{}])])


@pytest.mark.parametrize("overrides, message", [
    ({"redis_url": "http://x"}, "redis_url must start with redis://, rediss:// or unix://, got "
                                "'http://x'"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"max_deliveries": True}, "max_deliveries must be a positive integer, got True"),
    ({"stream": " "}, "stream must be a non-empty string, got ' '"),
    ({"dead_letter_stream": "recsys:events"}, "dead_letter_stream must differ from stream, "
                                              "both are 'recsys:events'"),
    ({"colour": 1}, "unknown key(s) in config section 'stream': colour"),
])
def test_bad_config_values_are_named(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_stream_config(overrides=overrides)
    assert str(err.value).startswith(message)


def test_yaml_file_then_flags(tmp_path):
    path = tmp_path / "stream.yaml"
    path.write_text("stream:\n  batch_size: 64\n  group: g1\n")
    cfg = load_stream_config(path, {"group": "g2", "block_ms": None})
    assert (cfg.batch_size, cfg.group, cfg.block_ms) == (64, "g2", StreamConfig().block_ms)
    path.write_text("deadline_ms: 100\nstream: [1]\n")
    with pytest.raises(ConfigError, match=r"config section 'stream' must be a mapping, got \[1\]"):
        load_stream_config(path)
