-- PUT a realistic Okta token response (~1.9 KB) for a random one of 1,000 sessions.
math.randomseed(os.time())
local function blob(n)
  local t = {}
  for i = 1, n do t[i] = string.char(97 + (i * 7) % 26) end
  return table.concat(t)
end
local body = '{"token_type":"Bearer","expires_in":3600,"scope":"openid email offline_access",'
  .. '"access_token":"eyJraWQiOiJ' .. blob(800) .. '","id_token":"eyJraWQiOiJ' .. blob(900)
  .. '","refresh_token":"' .. blob(40) .. '"}'
-- Added to wrk.headers (which carry -H Authorization); a headers argument to
-- wrk.format would replace them.
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format("PUT", "/api/v1/sessions/bench-" .. math.random(1, 1000) .. "/token", nil, body)
end
