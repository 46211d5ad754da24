-- Monthly active users up to the run date: distinct users with a session in each month.
-- TO_VARCHAR needs a TIMESTAMP_NTZ argument: on the emulator the format is dropped otherwise (FACTS.md).
SELECT TO_VARCHAR(s.ts::TIMESTAMP_NTZ, 'YYYY-MM') AS month,
       COUNT(DISTINCT u.userid) AS mau
FROM raw_data.session_timestamp AS s
JOIN raw_data.user_session_channel AS u ON s.sessionid = u.sessionid
WHERE s.ts < DATEADD(day, 1, %(run_date)s::DATE)
GROUP BY 1
