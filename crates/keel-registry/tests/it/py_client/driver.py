"""Drives the real py-eureka-client against a Keel registry for the Rust tests.

Modes:
  register SERVER APP PORT   register, heartbeat, then obey stdin: status X | delete_override | stop
  discover SERVER APP N      discovery only: call do_service until N distinct answers (JSON list)
  parse SERVER APP ID        parse our XML with the client's own parsers and print a JSON summary
"""
import asyncio
import inspect
import json
import logging
import sys
import time

# The client logs every expected 404 (which makes it re-register) with a traceback.
logging.disable(logging.WARNING)


def say(text):
    # The client logs to stdout too; the Rust side reads only lines with this prefix.
    print("@@ " + text, flush=True)

from py_eureka_client.eureka_client import EurekaClient
import py_eureka_client.eureka_basic as basic


async def keep_ticking():
    """Wakes this event loop every 50 ms, for the client's sake.

    The client shares one `asyncio.Lock` between this loop and the event loop of its heartbeat
    thread. When a heartbeat holds it as `stop()` (or another call) asks for it, the release sets
    this loop's waiter from the other thread, which does not wake this loop: it would sleep forever
    (seen on a loaded CI machine). A loop that wakes regularly runs the waiter's callback.
    """
    while True:
        await asyncio.sleep(0.05)


async def register(server, app, port):
    ticker = asyncio.create_task(keep_ticking())
    client = EurekaClient(eureka_server=server, app_name=app, instance_host="127.0.0.1",
                          instance_ip="127.0.0.1", instance_port=int(port),
                          renewal_interval_in_secs=1, duration_in_secs=3, should_discover=False)
    await client.start()
    say("registered")
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line.startswith("status "):
            await client.status_update(line.split(" ", 1)[1])
        elif line == "delete_override":
            await client.delete_status_override()
        elif line == "stop" or line == "":
            await client.stop()
            say("stopped")
            ticker.cancel()
            return
        say("ok " + line)


async def discover(server, app, want):
    ticker = asyncio.create_task(keep_ticking())
    client = EurekaClient(eureka_server=server, should_register=False, should_discover=True,
                          renewal_interval_in_secs=1)
    await client.start()
    seen = set()
    deadline = time.time() + 30
    while len(seen) < int(want) and time.time() < deadline:
        try:
            seen.add(await client.do_service(app, "/"))
        except Exception:
            await asyncio.sleep(0.2)
    # Report what was seen even if the client's shutdown stalls.
    say(json.dumps(sorted(seen)))
    try:
        await asyncio.wait_for(client.stop(), 10)
    except asyncio.TimeoutError:
        pass
    ticker.cancel()


def summary(apps):
    return {
        "versions__delta": apps.versionsDelta,
        "apps__hashcode": apps.appsHashcode,
        "applications": [{
            "name": a.name,
            "instances": [instance(i) for i in a.instances],
        } for a in apps.applications],
    }


def instance(i):
    return {
        "instanceId": i.instanceId, "app": i.app, "status": i.status,
        "overriddenstatus": i.overriddenstatus, "port": [i.port.port, i.port.enabled],
        "securePort": [i.securePort.port, i.securePort.enabled],
        "dataCenterInfo": [i.dataCenterInfo.name, i.dataCenterInfo.className],
        "lease": [i.leaseInfo.renewalIntervalInSecs, i.leaseInfo.durationInSecs],
        "metadata": i.metadata, "vipAddress": i.vipAddress, "actionType": i.actionType,
    }


async def awaited(value):
    # py-eureka-client 0.13's get_instance returns its inner coroutine un-awaited.
    while inspect.isawaitable(value):
        value = await value
    return value


async def parse(server, app, instance_id):
    out = {
        "apps": summary(await basic.get_applications(server)),
        "delta": summary(await basic.get_delta(server)),
        "vip": summary(await basic.get_vip(server, app.lower())),
        "instance": instance(await basic.get_app_instance(server, app, instance_id)),
        "byId": instance(await awaited(basic.get_instance(server, instance_id))),
    }
    say(json.dumps(out))


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    asyncio.run({"register": register, "discover": discover, "parse": parse}[mode](*args))
