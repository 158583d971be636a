-- sysbench: the reference lookup's SELECT straight to MariaDB, a random panelist per
-- query: the latency the database itself gives at the benchmark's concurrency.
function thread_init()
  drv = sysbench.sql.driver()
  con = drv:connect()
end
function event()
  con:query(string.format("SELECT id, portal_id, user_id, uuid, created_at, updated_at, status, has_data_changes FROM iam_portal_user_reference WHERE portal_id = 1 AND user_id = %d ORDER BY id DESC LIMIT 1", math.random(1, 1000)))
end
function thread_done()
  con:disconnect()
end
