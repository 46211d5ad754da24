-- Incremental build: the SELECT's rows (its sources read from the window_start parameter on) into the staging table.
INSERT INTO ${staging} (${columns})
${select}
