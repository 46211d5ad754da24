-- SQLite: BEGIN IMMEDIATE already made this the only writer
SELECT 1
