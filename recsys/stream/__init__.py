"""The event stream's contract, shared by its producers and its consumers: the entry format
(:mod:`.envelope`), the per-record checks (:mod:`.records`), the typed configuration
(:mod:`.config`), connecting to Redis (:mod:`.redis_connection`) and the producer the
ingest API appends with (:mod:`.producer`). The consumers are the ``stream_worker`` package.
"""
