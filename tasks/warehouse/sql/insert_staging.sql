-- Incremental build: the SELECT's rows (its sources read from %(window_start)s on) into the staging table.
INSERT INTO ${staging} (${columns})
${select}
