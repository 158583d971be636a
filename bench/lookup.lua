-- GET one portal user's reference, a random one of the 1,000 seeded.
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/v1/portals/1/user-references/" .. math.random(1, 1000))
end
