-- Every marker row of one kind of step (the pattern is its prefix, e.g. every publish): a range of run
-- dates checked in one query.
SELECT update_id FROM ${marker} WHERE update_id LIKE %(pattern)s
