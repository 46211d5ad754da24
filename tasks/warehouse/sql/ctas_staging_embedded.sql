CREATE OR REPLACE TABLE ${staging} AS
${select}
