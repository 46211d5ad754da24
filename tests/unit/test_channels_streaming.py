"""The sender streams: it reads the source batch by batch as requests go out, seeds once per source,
and a shard covers exactly its own customers."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence

from tasks.channels.base import Message
from tasks.channels.ledger import SeedMark, SendKey, SendLedger, Shard
from tasks.channels.limiter import ChannelLimiter
from tasks.channels.sender import Recipient, SendPolicy, SourceBatch, send_campaign

KEY = SendKey("spring", "2026-03-02", "email")
BATCH, BATCHES = 50, 40


class CountingSource:
    """A source that counts the recipient batches it has handed out."""

    def __init__(self, source: str | None = "customers.parquet:1:abc"):
        self.source = source
        self.produced = 0

    def batches(self) -> Iterator[SourceBatch]:
        for b in range(BATCHES):
            self.produced = b + 1
            ids = [f"c{b:03d}-{i:03d}" for i in range(BATCH)]
            yield SourceBatch(ids, lambda keep, ids=ids: [Recipient(c, f"{c}@example.com", {}) for c in ids
                                                          if c in keep])


class RecordingClient:
    provider, batch_size, idempotent = "recording", 10, False

    def __init__(self, source: CountingSource):
        self.source = source
        self.produced_at_send: list[int] = []
        self.sent: list[str] = []

    def reject_reason(self, message: Message) -> str | None:
        return None

    def send(self, messages: Sequence[Message]) -> list[str | None]:
        self.produced_at_send.append(self.source.produced)
        self.sent += [m.customer_id for m in messages]
        return [None] * len(messages)

    def close(self) -> None:
        pass


def run(tmp_path, source):
    client = RecordingClient(source)
    with SendLedger(tmp_path / "email.sqlite3") as ledger, ChannelLimiter(100_000, 1_000, "email") as limiter:
        result = send_campaign(KEY, source, lambda r: {"subject": "s", "body": "b"}, client, limiter, ledger,
                               SendPolicy(concurrency=2))
    return result, client


def test_the_source_is_read_as_requests_go_out_not_all_first(tmp_path):
    source = CountingSource()
    result, client = run(tmp_path, source)
    assert result.counts["sent"] == BATCH * BATCHES and len(set(client.sent)) == BATCH * BATCHES
    # when the first request went out, only the first batch had been read (and seeded)
    assert client.produced_at_send[0] == 1
    assert client.produced_at_send[-1] == BATCHES
    assert result.extra["seeded_this_run"] == BATCH * BATCHES


def test_a_rerun_of_the_same_source_skips_seeding_and_sends_nothing(tmp_path):
    run(tmp_path, CountingSource())
    result, client = run(tmp_path, CountingSource())
    assert result.extra["seeded_this_run"] == 0 and client.sent == []
    assert result.counts["sent"] == BATCH * BATCHES and result.complete


def test_a_restart_skips_the_batches_seeded_before_the_crash(tmp_path):
    with SendLedger(tmp_path / "email.sqlite3") as ledger:  # a run that died after seeding 3 batches
        for b, batch in zip(range(3), CountingSource().batches(), strict=False):
            ledger.seed(KEY, batch.ids, mark=SeedMark("customers.parquet:1:abc", b + 1, (b + 1) * BATCH, False))
        assert ledger.seeding(KEY, Shard()).batches == 3
    result, client = run(tmp_path, CountingSource())
    assert result.extra["seeded_this_run"] == (BATCHES - 3) * BATCH
    assert len(client.sent) == BATCH * BATCHES and result.complete
    with SendLedger(tmp_path / "email.sqlite3") as ledger:
        assert ledger.seeding(KEY, Shard()).complete


def test_a_source_without_identity_is_seeded_every_time(tmp_path):
    class Unnamed(CountingSource):  # no `source`: nothing can tell a re-run that the ledger already has it
        def __init__(self, batches: int):
            super().__init__(source=None)
            self.count = batches

        def batches(self):
            return (b for n, b in enumerate(super().batches()) if n < self.count)

    run(tmp_path, Unnamed(10))
    result, client = run(tmp_path, Unnamed(BATCHES))
    assert result.extra["seeded_this_run"] == (BATCHES - 10) * BATCH, "the new batches were seeded"
    assert len(client.sent) == (BATCHES - 10) * BATCH and result.complete


def test_shards_partition_the_customers_the_same_way_everywhere():
    ids = [f"C{i:06d}" for i in range(3000)]
    owners = [[s for s in range(4) if Shard(s, 4).owns(cid)] for cid in ids]
    assert all(len(o) == 1 for o in owners), "every customer is in exactly one shard"
    sizes = [sum(1 for o in owners if o == [s]) for s in range(4)]
    assert min(sizes) > 600, sizes  # CRC-32 spreads them
    assert Shard(zlib.crc32(b"C000042") % 4, 4).owns("C000042")  # a stable hash, not Python's salted one
    assert all(Shard(0, 1).owns(cid) for cid in ids[:10])
