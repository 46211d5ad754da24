-- The spec's description, set after every publish (an admin's COMMENT ON is overwritten by it).
COMMENT ON TABLE ${table} IS %(comment)s
