ALTER TABLE ${source} RENAME TO ${dest}
