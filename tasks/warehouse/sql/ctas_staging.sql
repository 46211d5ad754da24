-- Build one staging table per build: its name carries the build id, so no other run's CTAS can
-- ever land in it, and the publish takes exactly the table that was validated.
CREATE TABLE ${staging} AS
${select}
