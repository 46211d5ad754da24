-- Embedded, incremental build (fakesnow has no CLONE): the build starts as a copy of the published table.
CREATE TABLE ${staging} AS SELECT * FROM ${table}
