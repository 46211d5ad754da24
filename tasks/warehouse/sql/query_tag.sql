-- Labels this session's next queries in QUERY_HISTORY (JSON: project, task, table, date, build id).
ALTER SESSION SET QUERY_TAG = %(tag)s
