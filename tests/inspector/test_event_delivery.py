"""Events sent from threads with no event loop (worker threads, views) through channels_redis:
every one arrives, in order per sender, over one event loop of the process (one pool of Redis
connections) instead of a new loop, and new connections, per event."""

import threading

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from inspector import broadcast
from tests.conftest import require_env
from tokenlens_site.settings import redis_channel_layer


@pytest.fixture
def redis_layer(settings):
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(require_env("TOKENLENS_REDIS_URL"))}
    return get_channel_layer()


def test_events_from_many_threads_all_arrive_in_order_over_one_loop(redis_layer):
    channel = async_to_sync(redis_layer.new_channel)()
    loops = set()

    def sender(who: int) -> None:
        for n in range(5):
            broadcast.deliver("send", channel, {"type": "probe", "who": who, "n": n})
        loops.add(broadcast._sending_loop())

    threads = [threading.Thread(target=sender, args=(who,)) for who in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    async def receive_all() -> list[dict]:
        return [await redis_layer.receive(channel) for _ in range(40)]

    events = async_to_sync(receive_all)()
    for who in range(8):
        assert [e["n"] for e in events if e["who"] == who] == list(range(5))
    assert len(loops) == 1


def test_deliver_refuses_to_block_an_event_loop(redis_layer):
    async def from_async_code():
        broadcast.deliver("send", "specific.x!y", {"type": "probe"})

    with pytest.raises(RuntimeError, match="without an event loop"):
        async_to_sync(from_async_code)()
