-- the seq a named reader handled last (no row: it read nothing yet)
SELECT seq FROM event_cursors WHERE name = :name
