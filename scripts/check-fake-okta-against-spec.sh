#!/usr/bin/env bash
# Checks the fake Okta's answers against Okta's OpenAPI spec.
#
# Starts the fake (crates/fake-okta/src/bin/fake-okta.rs) and Prism's validating proxy in front of it,
# drives the users/groups/membership/lifecycle endpoints through the proxy with curl, and
# fails if Prism reports any contract violation (an `sl-violations` header, or the
# 422/500 that `--errors` turns violations into) or if a status differs from Okta's.
#
# Needs: cargo, curl, python3, and `npm install -g @stoplight/prism-cli@5.14.2`
# (5.15+ needs node 24). Works offline.
#
# Usage: scripts/check-fake-okta-against-spec.sh
#   env SPEC=path/to/okta-users-groups.yaml FAKE_PORT=4011 PRISM_PORT=4012

set -euo pipefail
cd "$(dirname "$0")/.."

SPEC=${SPEC:-tests/okta-spec/okta-users-groups.yaml}
FAKE_PORT=${FAKE_PORT:-4011}
PRISM_PORT=${PRISM_PORT:-4012}
FAKE="http://127.0.0.1:${FAKE_PORT}"
P="http://127.0.0.1:${PRISM_PORT}"
AUTH="Authorization: SSWS test-token"
WORK=$(mktemp -d)

command -v prism >/dev/null || npm install -g --silent @stoplight/prism-cli@5.14.2 >/dev/null
command -v prism >/dev/null || { echo "FATAL: prism not installed: npm install -g @stoplight/prism-cli@5.14.2" >&2; exit 2; }
[ -f "$SPEC" ] || { echo "spec not found: $SPEC" >&2; exit 2; }

cargo build --quiet --locked -p fake-okta --bin fake-okta

FAKE_PID=""
PRISM_PID=""
cleanup() {
  [ -n "$PRISM_PID" ] && kill "$PRISM_PID" 2>/dev/null || true
  [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

target/debug/fake-okta --port "$FAKE_PORT" --api-token test-token >"$WORK/fake.log" 2>&1 &
FAKE_PID=$!
prism proxy --errors -h 127.0.0.1 -p "$PRISM_PORT" "$SPEC" "$FAKE" >"$WORK/prism.log" 2>&1 &
PRISM_PID=$!

wait_for() {
  for _ in $(seq 1 60); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.5
  done
  echo "timed out waiting for $1" >&2
  cat "$WORK"/*.log >&2
  exit 2
}
wait_for "$FAKE/.well-known/openid-configuration"
wait_for "$P/"

FAILURES=0
CHECKS=0
BODY="$WORK/body"

# check NAME EXPECTED_STATUS METHOD PATH [JSON_BODY]
check() {
  local name=$1 expected=$2 method=$3 path=$4 data=${5:-}
  local args=(-s -X "$method" -H "$AUTH" -H "Accept: application/json" -D "$WORK/headers" -o "$BODY" -w '%{http_code}')
  if [ -n "$data" ]; then
    args+=(-H "Content-Type: application/json" --data "$data")
  fi
  local status
  status=$(curl "${args[@]}" "$P$path")
  CHECKS=$((CHECKS + 1))
  local violations
  violations=$(grep -i '^sl-violations:' "$WORK/headers" || true)
  if [ -n "$violations" ] || [ "$status" != "$expected" ]; then
    FAILURES=$((FAILURES + 1))
    echo "FAIL  $name: $method $path -> $status (expected $expected)"
    [ -n "$violations" ] && echo "      $violations"
    echo "      body: $(head -c 600 "$BODY")"
  else
    echo "ok    $name: $method $path -> $status"
  fi
}

json_field() { python3 -c "import json,sys; print(json.load(open('$BODY'))$1)"; }

next_link() {
  # The `next` URL from the Link header(s), re-pointed at the proxy.
  grep -i '^link:' "$WORK/headers" | tr ',' '\n' | grep 'rel="next"' | sed -E 's/.*<([^>]*)>.*/\1/' | sed "s#^$FAKE##" | head -1
}

# --- users ---
check "create user (activate, password)" 200 POST "/api/v1/users?activate=true" \
  '{"profile":{"firstName":"Isaac","lastName":"Brock","email":"isaac.brock@example.com","login":"isaac.brock@example.com","mobilePhone":"555-415-1337"},"credentials":{"password":{"value":"pa$$word1X"}}}'
ACTIVE_ID=$(json_field '["id"]')
check "create user (staged)" 200 POST "/api/v1/users?activate=false" \
  '{"profile":{"firstName":"Ann","lastName":"Lee","email":"ann.lee@example.com","login":"ann.lee@example.com"}}'
STAGED_ID=$(json_field '["id"]')
check "create user (provisioned)" 200 POST "/api/v1/users" \
  '{"profile":{"firstName":"Bo","lastName":"Ng","email":"bo.ng@example.com","login":"bo.ng@example.com"}}'
check "create duplicate login" 400 POST "/api/v1/users" \
  '{"profile":{"firstName":"I","lastName":"B","email":"other@example.com","login":"Isaac.Brock@EXAMPLE.com"}}'
check "create without lastName" 400 POST "/api/v1/users" \
  '{"profile":{"firstName":"I","email":"x1@example.com","login":"x1@example.com"}}'
check "get user by id" 200 GET "/api/v1/users/$ACTIVE_ID"
check "get user by login" 200 GET "/api/v1/users/ISAAC.BROCK%40example.com"
check "get unknown user" 404 GET "/api/v1/users/00u0000000000000000"
check "list users" 200 GET "/api/v1/users"
check "list users page 1" 200 GET "/api/v1/users?limit=1"
NEXT=$(next_link)
[ -n "$NEXT" ] || { echo "FAIL  no next link on page 1"; FAILURES=$((FAILURES + 1)); }
check "list users page 2 (next link)" 200 GET "$NEXT"
check "search by login" 200 GET "/api/v1/users?search=profile.login%20eq%20%22isaac.brock%40example.com%22"
check "filter by status" 200 GET "/api/v1/users?filter=status%20eq%20%22STAGED%22"
check "partial update" 200 POST "/api/v1/users/$ACTIVE_ID" '{"profile":{"nickName":"issac"}}'
check "replace" 200 PUT "/api/v1/users/$ACTIVE_ID" \
  '{"profile":{"firstName":"Isaac","lastName":"Brock","email":"isaac.brock@example.com","login":"isaac.brock@example.com"}}'
check "user's groups" 200 GET "/api/v1/users/$ACTIVE_ID/groups"

# --- lifecycle ---
check "activate staged (sendEmail=false)" 200 POST "/api/v1/users/$STAGED_ID/lifecycle/activate?sendEmail=false"
check "reactivate provisioned" 200 POST "/api/v1/users/$STAGED_ID/lifecycle/reactivate?sendEmail=false"
check "suspend active" 200 POST "/api/v1/users/$ACTIVE_ID/lifecycle/suspend"
check "suspend again (wrong status)" 403 POST "/api/v1/users/$ACTIVE_ID/lifecycle/suspend"
check "unsuspend" 200 POST "/api/v1/users/$ACTIVE_ID/lifecycle/unsuspend"
check "deactivate" 200 POST "/api/v1/users/$STAGED_ID/lifecycle/deactivate"
check "deactivate again (wrong status)" 403 POST "/api/v1/users/$STAGED_ID/lifecycle/deactivate"
check "update deprovisioned (wrong status)" 403 POST "/api/v1/users/$STAGED_ID" '{"profile":{"nickName":"x"}}'
check "activate deprovisioned" 200 POST "/api/v1/users/$STAGED_ID/lifecycle/activate?sendEmail=false"

# --- groups and membership ---
check "create group" 200 POST "/api/v1/groups" '{"profile":{"name":"EFS panel A","description":"Panelists of portal A"}}'
GROUP_ID=$(json_field '["id"]')
check "get group" 200 GET "/api/v1/groups/$GROUP_ID"
check "list groups" 200 GET "/api/v1/groups?q=EFS"
check "get unknown group" 404 GET "/api/v1/groups/00g0000000000000000"
check "add member" 204 PUT "/api/v1/groups/$GROUP_ID/users/$ACTIVE_ID"
check "add member again" 204 PUT "/api/v1/groups/$GROUP_ID/users/$ACTIVE_ID"
check "add to unknown group" 404 PUT "/api/v1/groups/00g0000000000000000/users/$ACTIVE_ID"
check "add unknown user" 404 PUT "/api/v1/groups/$GROUP_ID/users/00u0000000000000000"
check "list members" 200 GET "/api/v1/groups/$GROUP_ID/users"
check "list members of unknown group" 404 GET "/api/v1/groups/00g0000000000000000/users"
check "remove member" 204 DELETE "/api/v1/groups/$GROUP_ID/users/$ACTIVE_ID"
check "remove member again" 204 DELETE "/api/v1/groups/$GROUP_ID/users/$ACTIVE_ID"

# --- delete ---
check "delete (deactivates)" 204 DELETE "/api/v1/users/$ACTIVE_ID"
check "delete (deletes)" 204 DELETE "/api/v1/users/$ACTIVE_ID"
check "get deleted user" 404 GET "/api/v1/users/$ACTIVE_ID"
check "delete group" 204 DELETE "/api/v1/groups/$GROUP_ID"

echo
if [ "$FAILURES" -ne 0 ]; then
  echo "$FAILURES of $CHECKS checks FAILED against $SPEC"
  exit 1
fi
echo "all $CHECKS checks passed: no contract violations against $SPEC"
