# Captures the register bodies py-eureka-client 0.13.3 sends (see README.md).
import asyncio, sys
import py_eureka_client.eureka_client as ec
from py_eureka_client import http_client

OUT = sys.argv[1]
captured = []

class Capture(http_client.HttpClient):
    async def urlopen(self, request=None, data=None, timeout=None):
        url = request if isinstance(request, str) else request.url
        method = "GET" if isinstance(request, str) else request.method
        headers = {} if isinstance(request, str) else dict(request.headers)
        captured.append((method, url, headers, data))
        return http_client.HttpResponse()

http_client.set_http_client(Capture())
ec._current_time_millis = lambda: 1700000000001

async def main():
    c = ec.EurekaClient(eureka_server="http://127.0.0.1:8761/eureka/", app_name="order-service",
                        instance_ip="10.0.0.5", instance_host="10.0.0.5", instance_port=9090,
                        renewal_interval_in_secs=1, duration_in_secs=3,
                        metadata={"version": "1.2.3"}, zone="zone1", should_discover=False)
    await c._EurekaClient__parepare_instance_info()
    await c.register()
    await c.register(status="DOWN")

asyncio.run(main())
for i, (m, u, h, d) in enumerate(captured):
    print(m, u, h, file=sys.stderr)
    name = ["py-eureka-client-register.json", "py-eureka-client-register-down.json"][i]
    open(f"{OUT}/{name}", "wb").write(d)
