"""Device messages stored in batches, in process: the CPU the device service and the SQLite
store spend per MQTT message, without the broker, the MQTT client or HTTP.

Registers ``--devices`` air-quality devices on a new SQLite file (``synchronous = FULL``), stores
``--warm-up`` messages, then ``--messages`` more in batches of ``--batch`` through
``DeviceService.mqtt_messages`` (the payloads of ``bench_ingest.py``'s MQTT load) and prints the
process CPU per message and the writer thread's share::

    .venv/bin/python bench/bench_device_batches.py --messages 12000 --batch 600

CPU time moves with the load of a shared machine; the instructions per message do not. Run it
twice under ``valgrind --tool=callgrind`` with two ``--messages`` counts (the ``Collected``
totals): their difference over the difference of counts is the instructions per message. The
devices' API keys are hashed with a cheap stand-in (``--cheap-keys``) there, as scrypt under
valgrind takes minutes and is not what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from bench_ingest import mqtt_payload

from burgo.api.context_resolver import ContextResolver
from burgo.clock import SystemClock
from burgo.ingest import service as device_service
from burgo.ingest.service import DeviceService, Publication
from burgo.store.sqlite import SqliteStore
from burgo.store.sqlite import writer as sqlite_writer


def publications(start: int, count: int) -> list[Publication]:
    """The messages ``start`` to ``start + count`` of the MQTT load, as the listener hands
    them over (the bench registers devices bench-0000 ... in the default tenant)."""
    found = []
    for n in range(start, start + count):
        topic, payload = mqtt_payload(n)
        device = topic.split("/")[2]
        found.append(Publication("", device, payload))
    return found


async def run(args: argparse.Namespace) -> None:
    """Register, warm up, then time the batches."""
    writer_cpu = [0.0]
    write_group = sqlite_writer.SqliteWriter._write_group

    def timed(self: sqlite_writer.SqliteWriter, conn: object, group: list[object]) -> None:
        started = time.thread_time()
        try:
            write_group(self, conn, group)  # type: ignore[arg-type]
        finally:
            writer_cpu[0] += time.thread_time() - started

    sqlite_writer.SqliteWriter._write_group = timed  # type: ignore[method-assign, assignment]
    if args.cheap_keys:
        device_service.hash_key = lambda key: "not-a-key-hash"  # type: ignore[assignment]
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "burgo.db", synchronous="FULL", clock=clock)
        await store.open()
        try:
            async with httpx.AsyncClient() as client:
                resolver = ContextResolver(store, client, now=clock.now, timeout=5, cache_size=100)
                service = DeviceService(store, clock, resolve=resolver.resolve)
                for n in range(args.devices):
                    body = {"id": f"bench-{n:04d}", "profile": "air-quality"}
                    await service.add("", body)
                messages = publications(0, args.warm_up + args.messages)
                for start in range(0, args.warm_up, args.batch):
                    await service.mqtt_messages(messages[start : start + args.batch])
                writer_cpu[0] = 0.0
                cpu = time.process_time()
                for start in range(args.warm_up, args.warm_up + args.messages, args.batch):
                    errors = await service.mqtt_messages(messages[start : start + args.batch])
                    if any(errors):
                        raise SystemExit(f"bench: a message was refused: {errors}")
                cpu = time.process_time() - cpu
        finally:
            await store.close()
    print(
        f"{args.messages} messages in batches of {args.batch}: "
        f"{1e6 * cpu / args.messages:.1f} µs CPU a message, "
        f"of which the SQLite writer thread {1e6 * writer_cpu[0] / args.messages:.1f} µs"
    )


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=12000)
    parser.add_argument("--batch", type=int, default=600)
    parser.add_argument("--cheap-keys", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
