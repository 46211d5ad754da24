-- Month-over-month growth of monthly active users, from the published analytics.mau_summary (so it is
-- built after that table is published, and not at all when that table's build fails). growth_pct is
-- NULL for the first month.
SELECT m.month,
       m.mau,
       LAG(m.mau) OVER (ORDER BY m.month) AS previous_mau,
       ROUND(100.0 * (m.mau - LAG(m.mau) OVER (ORDER BY m.month)) / NULLIF(LAG(m.mau) OVER (ORDER BY m.month), 0), 2)
           AS growth_pct
FROM analytics.mau_summary AS m
