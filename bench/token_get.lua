-- GET the stored token response of a random one of the 1,000 seeded sessions.
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/v1/sessions/bench-" .. math.random(1, 1000) .. "/token")
end
