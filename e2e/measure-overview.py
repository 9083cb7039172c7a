# Times GET <path> on a running zixly: logs in through the API, then N warm-up and M timed requests,
# one at a time over one keep-alive connection. Usage: measure.py PORT EMAIL PASSWORD PATH [WARM] [TIMED]
import http.client, json, sys, time
port, email, pw, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
warm = int(sys.argv[5]) if len(sys.argv) > 5 else 20
timed = int(sys.argv[6]) if len(sys.argv) > 6 else 200
c = http.client.HTTPConnection("127.0.0.1", port)
c.request("POST", "/api/v1/auth/login", json.dumps({"email": email, "password": pw}),
          {"content-type": "application/json"})
r = c.getresponse(); r.read()
assert r.status == 200, r.status
cookie = [v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("zixly_session")][0]
times = []
for i in range(warm + timed):
    t = time.perf_counter()
    c.request("GET", path, headers={"cookie": cookie})
    r = c.getresponse(); body = r.read()
    dt = (time.perf_counter() - t) * 1000
    assert r.status == 200 and b"overview-chart" in body, (r.status, body[:300])
    if i >= warm:
        times.append(dt)
times.sort()
q = lambda p: times[min(len(times) - 1, int(round((len(times) - 1) * p)))]
print(f"{path}: n={len(times)} p50={q(0.5):.1f} ms p95={q(0.95):.1f} ms p99={q(0.99):.1f} ms max={times[-1]:.1f} ms")
