-- Monthly active users by acquisition channel up to the run date: distinct users with a session in the
-- month through that channel (a user active through two channels counts in both). Reads only raw data:
-- independent of analytics.mau_summary, so a failure of one never holds the other back.
SELECT TO_VARCHAR(s.ts::TIMESTAMP_NTZ, 'YYYY-MM') AS month,
       u.channel AS channel,
       COUNT(DISTINCT u.userid) AS mau
FROM raw_data.session_timestamp AS s
JOIN raw_data.user_session_channel AS u ON s.sessionid = u.sessionid
WHERE s.ts < DATEADD(day, 1, %(run_date)s::DATE)
GROUP BY 1, 2
