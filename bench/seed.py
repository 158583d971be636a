"""Seeds a running efs-iam for the benchmark: 1,000 portal user references in portal 1
and 1,000 stored session tokens, over one keep-alive connection."""
import http.client, json, sys

host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection(host, port)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
body = json.dumps({"token_type": "Bearer", "expires_in": 3600, "access_token": "a" * 800,
                   "id_token": "i" * 900, "refresh_token": "r" * 40})
for uid in range(1, 1001):
    ref = json.dumps({"okta_user_id": f"00u{uid:017d}", "status": "synced"})
    for path, payload in ((f"/api/v1/portals/1/user-references/{uid}", ref),
                          (f"/api/v1/sessions/bench-{uid}/token", body)):
        conn.request("PUT", path, payload, headers)
        res = conn.getresponse()
        res.read()
        if res.status >= 300:
            sys.exit(f"seeding {path} failed: {res.status}")
