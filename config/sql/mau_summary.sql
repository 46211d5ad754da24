-- Monthly active users up to the run date: distinct users with a session in each month.
-- Incremental (config/tables.toml): the SELECT reads sessions from the window_start parameter on, the first day
-- of the oldest month being rebuilt (a full build binds the earliest date, so it reads them all).
-- TO_VARCHAR needs a TIMESTAMP_NTZ argument: fakesnow 0.12.1 silently drops the format on a
-- plain TIMESTAMP (the result is the full timestamp text, millions of rows instead of 24); ::TIMESTAMP_NTZ is valid
-- Snowflake and correct on both.
SELECT TO_VARCHAR(s.ts::TIMESTAMP_NTZ, 'YYYY-MM') AS month,
       COUNT(DISTINCT u.userid) AS mau
FROM raw_data.session_timestamp AS s
JOIN raw_data.user_session_channel AS u ON s.sessionid = u.sessionid
WHERE s.ts >= %(window_start)s::DATE
  AND s.ts < DATEADD(day, 1, %(run_date)s::DATE)
GROUP BY 1
