-- A privilege the table spec declares (`grants`), granted after every publish; idempotent.
GRANT ${privilege} ON TABLE ${table} TO ROLE ${role}
