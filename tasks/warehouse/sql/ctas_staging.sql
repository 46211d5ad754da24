-- Build the staging table from the table's SELECT; the comment carries the build id, which
-- travels with the table through the swap and tells a re-run which version is where.
CREATE OR REPLACE TABLE ${staging} COMMENT = %(build_id)s AS
${select}
